package org.phonesignin.android

import androidx.biometric.BiometricManager.Authenticators.BIOMETRIC_STRONG
import androidx.biometric.BiometricManager.Authenticators.DEVICE_CREDENTIAL
import androidx.biometric.BiometricPrompt
import androidx.core.content.ContextCompat
import androidx.fragment.app.FragmentActivity
import kotlin.coroutines.resume
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.suspendCancellableCoroutine
import kotlinx.coroutines.withContext
import org.phonesignin.core.PlatformException

/**
 * Shows `BiometricPrompt` (strong biometrics or the device credential) on the activity in front.
 * The activity attaches itself in `onResume` and detaches in `onPause`. No activity, or no
 * biometric or device credential set up, is `NotAvailable`: nothing is signed.
 */
class BiometricPrompter {
    @Volatile private var activity: FragmentActivity? = null

    fun attach(activity: FragmentActivity) { this.activity = activity }

    fun detach(activity: FragmentActivity) { if (this.activity === activity) this.activity = null }

    /**
     * Asks the user, with [title] (the core's prompt), and unlocks [crypto] when there is one.
     * Returns the authenticated object (null for a standalone prompt); throws `Cancelled`,
     * `VerificationFailed` or `NotAvailable` otherwise.
     */
    suspend fun authenticate(title: String, crypto: BiometricPrompt.CryptoObject?): BiometricPrompt.CryptoObject? =
        withContext(Dispatchers.Main) {
            val host = activity ?: throw PlatformException.NotAvailable()
            suspendCancellableCoroutine { cont ->
                val prompt = BiometricPrompt(
                    host,
                    ContextCompat.getMainExecutor(host),
                    object : BiometricPrompt.AuthenticationCallback() {
                        override fun onAuthenticationSucceeded(result: BiometricPrompt.AuthenticationResult) {
                            val authenticated = result.cryptoObject
                            if (crypto != null && authenticated == null) {
                                cont.resumeWith(Result.failure(PlatformException.Failed("no crypto object")))
                            } else {
                                cont.resume(authenticated)
                            }
                        }

                        override fun onAuthenticationError(code: Int, message: CharSequence) {
                            val error = when (code) {
                                BiometricPrompt.ERROR_USER_CANCELED,
                                BiometricPrompt.ERROR_NEGATIVE_BUTTON,
                                BiometricPrompt.ERROR_CANCELED -> PlatformException.Cancelled()
                                BiometricPrompt.ERROR_NO_BIOMETRICS,
                                BiometricPrompt.ERROR_HW_NOT_PRESENT,
                                BiometricPrompt.ERROR_HW_UNAVAILABLE,
                                BiometricPrompt.ERROR_NO_DEVICE_CREDENTIAL -> PlatformException.NotAvailable()
                                BiometricPrompt.ERROR_LOCKOUT,
                                BiometricPrompt.ERROR_LOCKOUT_PERMANENT -> PlatformException.VerificationFailed()
                                else -> PlatformException.Failed("biometric error $code: $message")
                            }
                            cont.resumeWith(Result.failure(error))
                        }
                    },
                )
                val info = BiometricPrompt.PromptInfo.Builder()
                    .setTitle(title)
                    .setAllowedAuthenticators(BIOMETRIC_STRONG or DEVICE_CREDENTIAL)
                    .build()
                if (crypto != null) prompt.authenticate(info, crypto) else prompt.authenticate(info)
                cont.invokeOnCancellation { prompt.cancelAuthentication() }
            }
        }
}
