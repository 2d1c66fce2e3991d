package org.phonesignin.android

import java.math.BigInteger
import java.nio.file.Files
import java.security.KeyPairGenerator
import java.security.SecureRandom
import java.security.interfaces.ECPublicKey
import java.security.spec.ECGenParameterSpec
import java.util.Base64
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlinx.coroutines.runBlocking
import org.junit.Test
import org.phonesignin.core.AuthenticatorException
import org.phonesignin.core.PushKind
import org.phonesignin.core.PushOutcome

/**
 * Push without Google (UnifiedPush / Web Push, docs/EMBEDDING.md): the facade builds the
 * subscription token the server expects from what the UnifiedPush connector hands over, and
 * passes the decrypted message text to the core.
 */
class WebPushTest {
    private fun dataDir() = Files.createTempDirectory("phone-webpush").toString()

    private val b64url = Base64.getUrlEncoder().withoutPadding()

    /** A subscription key as a distributor creates it: uncompressed P-256, `04 || x || y`. */
    private fun p256dh(): ByteArray {
        val gen = KeyPairGenerator.getInstance("EC").apply { initialize(ECGenParameterSpec("secp256r1")) }
        val point = (gen.generateKeyPair().public as ECPublicKey).w
        fun fixed(n: BigInteger) = n.toByteArray().takeLast(32).toByteArray().let { ByteArray(32 - it.size) + it }
        return byteArrayOf(4) + fixed(point.affineX) + fixed(point.affineY)
    }

    @Test
    fun webPushBuildsTheSubscriptionTokenAndRefusesWhatTheServerWould() {
        val key = b64url.encodeToString(p256dh())
        val secret = ByteArray(16).also { SecureRandom().nextBytes(it) }
        val endpoint = "https://ntfy.example.net/upAbC123?up=1"
        // The connector may give padded base64url: accepted, written unpadded.
        val padded = Base64.getUrlEncoder().encodeToString(secret)
        val registration = PhoneSignIn.webPush(endpoint, key, padded)
        assertEquals(PushKind.WEB_PUSH, registration.kind)
        assertEquals("$key.${b64url.encodeToString(secret)}.$endpoint", registration.token)

        val auth = b64url.encodeToString(secret)
        for ((what, call) in listOf(
            "plain http" to { PhoneSignIn.webPush("http://ntfy.example.net/up", key, auth) },
            "not a URL" to { PhoneSignIn.webPush("ntfy.example.net/up", key, auth) },
            "short secret" to { PhoneSignIn.webPush(endpoint, key, b64url.encodeToString(secret.copyOf(8))) },
            "not a point" to { PhoneSignIn.webPush(endpoint, b64url.encodeToString(ByteArray(65) { 4 }), auth) },
            "compressed key" to { PhoneSignIn.webPush(endpoint, b64url.encodeToString(p256dh().copyOf(33)), auth) },
        )) {
            assertFailsWith<AuthenticatorException.InvalidInput>(what) { call() }
        }
    }

    @Test
    fun aDecryptedMessageGoesToTheCoreAsText() = runBlocking {
        PhoneSignIn(dataDir(), JcaKeyStore()).use { app ->
            for (text in listOf("", "{", "[]", """{"v": 1}""", "\u0000")) {
                assertFailsWith<AuthenticatorException.InvalidPushPayload>("text: $text") { app.onPushMessage(text) }
            }
            // A well-formed envelope for an account this phone does not have.
            val id = { b64url.encodeToString(ByteArray(16).also { SecureRandom().nextBytes(it) }) }
            val outcome = app.onPushMessage("""{"v":1,"aid":"${id()}","rid":"${id()}"}""")
            assertEquals(PushOutcome.UnknownAccount, outcome)
        }
    }
}
