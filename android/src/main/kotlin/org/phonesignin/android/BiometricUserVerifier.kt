package org.phonesignin.android

import android.content.Context
import androidx.biometric.BiometricManager
import androidx.biometric.BiometricManager.Authenticators.BIOMETRIC_STRONG
import androidx.biometric.BiometricManager.Authenticators.DEVICE_CREDENTIAL
import org.phonesignin.core.UserVerifier
import org.phonesignin.core.VerificationOutcome

/**
 * The core asks for user verification before every approval signature. On Android the
 * verification-bound key enforces it itself, per signature, through `BiometricPrompt` with a
 * `CryptoObject` ([AndroidKeystoreKeyStore.sign]); showing a second prompt here would ask the
 * user twice. So this verifier checks that strong biometrics or a device credential are set up,
 * hands the reason to the prompt that [AndroidKeystoreKeyStore] shows next, and reports
 * `DENIED` when no such authenticator exists (nothing is signed then).
 */
class BiometricUserVerifier(
    private val context: Context,
    private val prompter: BiometricPrompter,
) : UserVerifier {
    override suspend fun verify(reason: String): VerificationOutcome {
        val status = BiometricManager.from(context).canAuthenticate(BIOMETRIC_STRONG or DEVICE_CREDENTIAL)
        if (status != BiometricManager.BIOMETRIC_SUCCESS) return VerificationOutcome.DENIED
        prompter.reason = reason
        return VerificationOutcome.VERIFIED
    }
}
