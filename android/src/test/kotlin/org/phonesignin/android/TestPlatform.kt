package org.phonesignin.android

import java.security.KeyPair
import java.security.KeyPairGenerator
import java.security.Signature
import java.security.spec.ECGenParameterSpec
import java.util.Collections
import java.util.concurrent.ConcurrentHashMap
import org.phonesignin.core.DeviceKeyStore
import org.phonesignin.core.PlatformException

/** One signature the core asked for: the key, and the user-verification prompt it carried. */
data class SignRequest(val alias: String, val prompt: String?)

/**
 * A `DeviceKeyStore` in plain JCA that hands the core exactly the formats Android Keystore does:
 * the X.509 SubjectPublicKeyInfo DER public key (`publicKey.encoded`) and DER ECDSA signatures
 * from `SHA256withECDSA`. Like [AndroidKeystoreKeyStore], it verifies the user for every signature
 * that carries a prompt; the test scripts the user's answer with [refuseWith].
 */
class JcaKeyStore : DeviceKeyStore {
    private val keys = ConcurrentHashMap<String, KeyPair>()
    val publicKeys = ConcurrentHashMap<String, ByteArray>()

    /** Every signature asked for, made or refused, in order. */
    val requests: MutableList<SignRequest> = Collections.synchronizedList(mutableListOf())

    /** Every (alias) actually signed, in order. */
    val signed: MutableList<String> = Collections.synchronizedList(mutableListOf())

    /** How the user answers the next prompts: null passes, otherwise this is thrown (nothing signed). */
    @Volatile var refuseWith: (() -> PlatformException)? = null

    override suspend fun generate(alias: String, requireUserVerification: Boolean): ByteArray {
        val gen = KeyPairGenerator.getInstance("EC")
        gen.initialize(ECGenParameterSpec("secp256r1"))
        val pair = gen.generateKeyPair()
        keys[alias] = pair
        return pair.public.encoded.also { publicKeys[alias] = it }
    }

    override suspend fun sign(alias: String, message: ByteArray, prompt: String?): ByteArray {
        requests.add(SignRequest(alias, prompt))
        val pair = keys[alias] ?: throw PlatformException.KeyNotFound()
        if (prompt != null) refuseWith?.let { throw it() }
        signed.add(alias)
        return Signature.getInstance("SHA256withECDSA").run {
            initSign(pair.private)
            update(message)
            sign()
        }
    }

    override suspend fun delete(alias: String) {
        keys.remove(alias) ?: throw PlatformException.KeyNotFound()
    }
}
