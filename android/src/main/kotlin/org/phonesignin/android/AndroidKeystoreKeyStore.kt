package org.phonesignin.android

import android.content.Context
import android.content.pm.PackageManager
import android.security.keystore.KeyGenParameterSpec
import android.security.keystore.KeyInfo
import android.security.keystore.KeyProperties
import androidx.biometric.BiometricPrompt
import java.security.KeyFactory
import java.security.KeyPairGenerator
import java.security.KeyStore
import java.security.PrivateKey
import java.security.Signature
import java.security.spec.ECGenParameterSpec
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.withContext
import org.phonesignin.core.DeviceKeyStore
import org.phonesignin.core.PlatformException

/**
 * EC P-256 keys in the Android Keystore, in StrongBox when the device has one. Keys generated
 * with `requireUserVerification` need strong biometrics or the device credential for **every**
 * signature (timeout 0, so the signature goes through `BiometricPrompt.CryptoObject`) and are
 * invalidated when a new biometric is enrolled. Returns what the Keystore gives — X.509 SPKI DER
 * public keys and DER `SHA256withECDSA` signatures — and the core normalises them.
 *
 * User verification follows the signature's `prompt` (the core sends one with every approval):
 * a key bound to user authentication shows its own `BiometricPrompt` with the `CryptoObject`
 * (one prompt, and the Keystore itself refuses to sign without it); a device key shows a
 * standalone `BiometricPrompt` first and signs only after it succeeded. Without a prompt, no UI.
 */
class AndroidKeystoreKeyStore(
    private val context: Context,
    private val prompter: BiometricPrompter,
) : DeviceKeyStore {
    private val keyStore: KeyStore = KeyStore.getInstance(ANDROID_KEYSTORE).apply { load(null) }

    override suspend fun generate(alias: String, requireUserVerification: Boolean): ByteArray =
        withContext(Dispatchers.IO) {
            val strongBox = context.packageManager.hasSystemFeature(PackageManager.FEATURE_STRONGBOX_KEYSTORE)
            val spec = KeyGenParameterSpec.Builder(alias, KeyProperties.PURPOSE_SIGN)
                .setAlgorithmParameterSpec(ECGenParameterSpec("secp256r1"))
                .setDigests(KeyProperties.DIGEST_SHA256)
                .setIsStrongBoxBacked(strongBox)
                .apply {
                    if (requireUserVerification) {
                        setUserAuthenticationRequired(true)
                        setUserAuthenticationParameters(
                            0,
                            KeyProperties.AUTH_BIOMETRIC_STRONG or KeyProperties.AUTH_DEVICE_CREDENTIAL,
                        )
                        setInvalidatedByBiometricEnrollment(true)
                    }
                }
                .build()
            val generator = KeyPairGenerator.getInstance(KeyProperties.KEY_ALGORITHM_EC, ANDROID_KEYSTORE)
            generator.initialize(spec)
            generator.generateKeyPair().public.encoded // X.509 SubjectPublicKeyInfo DER
        }

    override suspend fun sign(alias: String, message: ByteArray, prompt: String?): ByteArray {
        val key = keyStore.getKey(alias, null) as? PrivateKey ?: throw PlatformException.KeyNotFound()
        val signature = Signature.getInstance("SHA256withECDSA").apply { initSign(key) }
        val ready = when {
            requiresAuthentication(key) -> {
                // The core never signs with such a key without asking the user.
                val title = prompt ?: throw PlatformException.Failed("this key signs only after a prompt")
                prompter.authenticate(title, BiometricPrompt.CryptoObject(signature))?.signature
                    ?: throw PlatformException.Failed("no signature after authentication")
            }
            prompt != null -> {
                prompter.authenticate(prompt, null)
                signature
            }
            else -> signature
        }
        return withContext(Dispatchers.IO) {
            ready.update(message)
            ready.sign() // X9.62 DER
        }
    }

    override suspend fun delete(alias: String) = withContext(Dispatchers.IO) {
        if (!keyStore.containsAlias(alias)) throw PlatformException.KeyNotFound()
        keyStore.deleteEntry(alias)
    }

    private fun requiresAuthentication(key: PrivateKey): Boolean {
        val info = KeyFactory.getInstance(key.algorithm, ANDROID_KEYSTORE).getKeySpec(key, KeyInfo::class.java)
        return info.isUserAuthenticationRequired
    }

    private companion object {
        const val ANDROID_KEYSTORE = "AndroidKeyStore"
    }
}
