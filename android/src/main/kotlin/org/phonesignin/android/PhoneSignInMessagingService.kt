package org.phonesignin.android

import com.google.firebase.messaging.FirebaseMessagingService
import com.google.firebase.messaging.RemoteMessage
import kotlinx.coroutines.runBlocking
import org.phonesignin.core.AuthenticatorException

/**
 * FCM entry point: forwards `message.data` unchanged to the core, which parses it, fetches the
 * request over the authenticated channel and verifies the server's signature; then shows the
 * notification. Runs on FCM's worker thread, so blocking here is allowed.
 */
class PhoneSignInMessagingService : FirebaseMessagingService() {
    override fun onMessageReceived(message: RemoteMessage) {
        val phone = PhoneSignInProvider.get(this)
        val outcome = try {
            runBlocking { phone.onPushData(message.data) }
        } catch (e: AuthenticatorException) {
            return // not ours, forged, or the network failed: nothing to show
        }
        SignInNotifications.forOutcome(outcome)?.let { SignInNotifier.show(this, it) }
    }

    override fun onNewToken(token: String) {
        // The core has no call to update a push token after enrollment yet (see docs/EMBEDDING.md):
        // re-enrolling is the only way to register a new token today.
    }
}
