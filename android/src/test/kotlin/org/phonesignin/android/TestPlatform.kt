package org.phonesignin.android

import java.security.KeyPair
import java.security.KeyPairGenerator
import java.security.Signature
import java.security.spec.ECGenParameterSpec
import java.util.Collections
import java.util.concurrent.ConcurrentHashMap
import org.phonesignin.core.DeviceKeyStore
import org.phonesignin.core.PlatformException
import org.phonesignin.core.UserVerifier
import org.phonesignin.core.VerificationOutcome

/**
 * A `DeviceKeyStore` in plain JCA that hands the core exactly the formats Android Keystore does:
 * the X.509 SubjectPublicKeyInfo DER public key (`publicKey.encoded`) and DER ECDSA signatures
 * from `SHA256withECDSA`.
 */
class JcaKeyStore : DeviceKeyStore {
    private val keys = ConcurrentHashMap<String, KeyPair>()
    val publicKeys = ConcurrentHashMap<String, ByteArray>()

    /** Every (alias) signed, in order. */
    val signed: MutableList<String> = Collections.synchronizedList(mutableListOf())

    override suspend fun generate(alias: String, requireUserVerification: Boolean): ByteArray {
        val gen = KeyPairGenerator.getInstance("EC")
        gen.initialize(ECGenParameterSpec("secp256r1"))
        val pair = gen.generateKeyPair()
        keys[alias] = pair
        return pair.public.encoded.also { publicKeys[alias] = it }
    }

    override suspend fun sign(alias: String, message: ByteArray): ByteArray {
        val pair = keys[alias] ?: throw PlatformException.KeyNotFound()
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

/** A user-verification prompt whose answer the test chooses. */
class ScriptedVerifier(var outcome: VerificationOutcome = VerificationOutcome.VERIFIED) : UserVerifier {
    val reasons: MutableList<String> = Collections.synchronizedList(mutableListOf())

    override suspend fun verify(reason: String): VerificationOutcome {
        reasons.add(reason)
        return outcome
    }
}
