package org.phonesignin.android

import android.security.keystore.KeyGenParameterSpec
import android.security.keystore.KeyProperties
import java.security.GeneralSecurityException
import java.security.KeyStore
import javax.crypto.Cipher
import javax.crypto.KeyGenerator
import javax.crypto.SecretKey
import javax.crypto.spec.GCMParameterSpec
import org.phonesignin.core.PlatformException
import org.phonesignin.core.SecretStore

/**
 * The core's [SecretStore] on Android: AES-256-GCM with a key that never leaves the Android
 * Keystore (StrongBox when the device has one), created on first use under [alias]. The
 * context the core passes is the associated data, so a sealed secret opens only for the
 * account it was sealed for. No user authentication: TOTP codes must show without a prompt
 * (the app's own lock screen, if any, guards the screen that shows them).
 *
 * A sealed value is `iv (12 bytes) || ciphertext || tag`.
 */
class AndroidKeystoreSecretStore(
    private val alias: String = "phonesignin.secrets",
    private val strongBox: Boolean = false,
) : SecretStore {
    private fun key(): SecretKey {
        val store = KeyStore.getInstance("AndroidKeyStore").apply { load(null) }
        (store.getKey(alias, null) as? SecretKey)?.let { return it }
        val spec = KeyGenParameterSpec.Builder(alias, KeyProperties.PURPOSE_ENCRYPT or KeyProperties.PURPOSE_DECRYPT)
            .setBlockModes(KeyProperties.BLOCK_MODE_GCM)
            .setEncryptionPaddings(KeyProperties.ENCRYPTION_PADDING_NONE)
            .setKeySize(256)
            .setIsStrongBoxBacked(strongBox)
            .build()
        return KeyGenerator.getInstance(KeyProperties.KEY_ALGORITHM_AES, "AndroidKeyStore")
            .apply { init(spec) }
            .generateKey()
    }

    override suspend fun seal(context: String, plaintext: ByteArray): ByteArray =
        try {
            val cipher = Cipher.getInstance("AES/GCM/NoPadding")
            // The Keystore picks the IV (randomized encryption is required).
            cipher.init(Cipher.ENCRYPT_MODE, key())
            cipher.updateAAD(context.toByteArray(Charsets.UTF_8))
            cipher.iv + cipher.doFinal(plaintext)
        } catch (e: GeneralSecurityException) {
            throw PlatformException.Failed("sealing failed: ${e.javaClass.simpleName}")
        }

    override suspend fun unseal(context: String, sealed: ByteArray): ByteArray {
        if (sealed.size < IV_BYTES + TAG_BYTES) throw PlatformException.Failed("sealed value too short")
        return try {
            val cipher = Cipher.getInstance("AES/GCM/NoPadding")
            cipher.init(Cipher.DECRYPT_MODE, key(), GCMParameterSpec(TAG_BYTES * 8, sealed, 0, IV_BYTES))
            cipher.updateAAD(context.toByteArray(Charsets.UTF_8))
            cipher.doFinal(sealed, IV_BYTES, sealed.size - IV_BYTES)
        } catch (e: GeneralSecurityException) {
            // Another context, a changed byte, or a deleted Keystore key.
            throw PlatformException.Failed("unsealing failed: ${e.javaClass.simpleName}")
        }
    }

    private companion object {
        const val IV_BYTES = 12
        const val TAG_BYTES = 16
    }
}
