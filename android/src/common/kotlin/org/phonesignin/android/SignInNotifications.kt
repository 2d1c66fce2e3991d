package org.phonesignin.android

import org.phonesignin.core.PendingRequest
import org.phonesignin.core.PushOutcome
import org.phonesignin.core.RequestKind

/** What a sign-in notification shows. Built from verified request details only. */
data class SignInNotification(
    val requestId: String,
    val title: String,
    val body: String,
)

/**
 * Notification text for a verified request: account, app name and location (each when the
 * server's policy shows it). Never the number: the core does not know it — the user reads it on
 * the sign-in screen and types it on the phone.
 */
object SignInNotifications {
    fun forOutcome(outcome: PushOutcome): SignInNotification? =
        when (outcome) {
            is PushOutcome.ShowRequest -> forRequest(outcome.request)
            else -> null
        }

    fun forRequest(request: PendingRequest): SignInNotification {
        val title =
            when (request.kind) {
                RequestKind.PASSWORDLESS -> "Approve sign-in?"
                RequestKind.PUSH -> "Approve sign-in request?"
                RequestKind.NEW_DEVICE -> "New device added. Was this you?"
            }
        val lines = buildList {
            request.deviceName?.let { add("Device: $it") }
            add(request.upn)
            request.appName?.let { add("App: $it") }
            request.location?.let { add("Location: $it") }
            add(request.serverName)
        }
        return SignInNotification(request.requestId, title, lines.joinToString("\n"))
    }
}
