package org.phonesignin.android

import kotlinx.coroutines.runBlocking
import org.phonesignin.core.AuthenticatorException
import org.unifiedpush.android.connector.FailedReason
import org.unifiedpush.android.connector.PushService
import org.unifiedpush.android.connector.data.PushEndpoint
import org.unifiedpush.android.connector.data.PushMessage

/**
 * UnifiedPush entry point, for phones without Google services (docs/EMBEDDING.md, "Push without
 * Google"). The connector decrypts each Web Push message (RFC 8291) with the keys it created for
 * the subscription; the text goes unchanged to the core, which parses it, fetches the request
 * over the authenticated channel and verifies the server's signature; then the notification is
 * shown. A message the connector could not decrypt is dropped.
 */
class PhoneSignInUnifiedPushService : PushService() {
    override fun onMessage(message: PushMessage, instance: String) {
        if (!message.decrypted) return // not encrypted to our subscription: not from our server
        val phone = PhoneSignInProvider.get(this)
        val outcome = try {
            runBlocking { phone.onPushMessage(message.content.decodeToString()) }
        } catch (e: AuthenticatorException) {
            return // not ours, forged, or the network failed: nothing to show
        }
        SignInNotifications.forOutcome(outcome)?.let { SignInNotifier.show(this, it) }
    }

    override fun onNewEndpoint(endpoint: PushEndpoint, instance: String) {
        // Enrollment takes the subscription (PhoneSignIn.webPush(endpoint.url,
        // endpoint.pubKeySet.pubKey, endpoint.pubKeySet.auth)); the core has no call to update
        // it afterwards yet, so the app keeps the latest endpoint for its next enrollment.
        UnifiedPushEndpoints.latest = endpoint
    }

    override fun onRegistrationFailed(reason: FailedReason, instance: String) {
        UnifiedPushEndpoints.latest = null
    }

    override fun onUnregistered(instance: String) {
        UnifiedPushEndpoints.latest = null
    }
}

/** The distributor's latest endpoint for this app, for the next enrollment. */
object UnifiedPushEndpoints {
    @Volatile var latest: PushEndpoint? = null
}
