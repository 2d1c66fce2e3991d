package org.phonesignin.android

import java.nio.file.Files
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertTrue
import kotlinx.coroutines.runBlocking
import org.junit.AfterClass
import org.junit.BeforeClass
import org.junit.Test
import org.phonesignin.core.Authenticator
import org.phonesignin.core.AuthenticatorException
import org.phonesignin.core.DeviceKeyStore
import org.phonesignin.core.PlatformException

/**
 * Failures inside platform callbacks and malformed input from the shell reach the caller as
 * typed `AuthenticatorException`s — never a crash, never a hang.
 */
class ErrorsTest {
    private fun dataDir() = Files.createTempDirectory("phone").toString()

    private class ThrowingKeyStore(val error: () -> Throwable) : DeviceKeyStore {
        override suspend fun generate(alias: String, requireUserVerification: Boolean): ByteArray = throw error()
        override suspend fun sign(alias: String, message: ByteArray, prompt: String?): ByteArray = throw error()
        override suspend fun delete(alias: String) = throw error()
    }

    private class GarbageKeyStore : DeviceKeyStore {
        override suspend fun generate(alias: String, requireUserVerification: Boolean) = byteArrayOf(1, 2, 3)
        override suspend fun sign(alias: String, message: ByteArray, prompt: String?) = byteArrayOf(4, 5, 6)
        override suspend fun delete(alias: String) {}
    }

    @Test
    fun undeclaredExceptionInTheRawGeneratedCallbackIsATypedKeyStoreError() = runBlocking {
        val (_, link) = server.newUserLink()
        // Straight into the generated bindings, without the facade's guard.
        Authenticator(dataDir(), ThrowingKeyStore { IllegalStateException("keystore exploded") }).use { core ->
            val e = assertFailsWith<AuthenticatorException.KeyStore> {
                core.enroll(link, "phone", PhoneSignIn.LONG_POLL)
            }
            assertTrue(e.reason.contains("keystore exploded"), e.reason)
        }
    }

    @Test
    fun javaErrorInACallbackIsTypedThroughTheFacade() = runBlocking {
        val (_, link) = server.newUserLink()
        // A java.lang.Error is not caught by the generated code; the facade's guard turns it into
        // PlatformException.Failed, so the core answers with a typed error instead of hanging.
        PhoneSignIn(dataDir(), ThrowingKeyStore { AssertionError("callback panicked") }).use { app ->
            val e = assertFailsWith<AuthenticatorException.KeyStore> { app.enroll(link, "phone") }
            assertTrue(e.reason.contains("callback panicked"), e.reason)
        }
    }

    @Test
    fun aRefusedPromptWhenEnablingPhoneSignInRegistersNothingAndLeavesNoKey() = runBlocking {
        val (_, link) = server.newUserLink()
        val keys = JcaKeyStore()
        PhoneSignIn(dataDir(), keys).use { app ->
            val account = app.enroll(link, "phone")
            val keysAfterEnrollment = keys.publicKeys.keys.toSet()
            keys.refuseWith = { PlatformException.VerificationFailed() }
            assertFailsWith<AuthenticatorException.VerificationFailed> { app.enablePhoneSignIn(account.accountId) }
            assertEquals(false, app.accounts().single().phoneSignInEnabled)
            // One prompt, through the new key, and it was refused: nothing signed after it.
            val prompted = keys.requests.filter { it.prompt != null }
            assertEquals(1, prompted.size)
            assertTrue(prompted.single().alias.endsWith(".passwordless"))
            assertTrue(keys.signed.none { it.endsWith(".passwordless") }, "the refused key signed nothing")
            // The new key was deleted again; the enrollment's device key is kept.
            assertFailsWith<PlatformException.KeyNotFound> { keys.delete(prompted.single().alias) }
            assertTrue(keysAfterEnrollment.isNotEmpty())
        }
    }

    @Test
    fun unusableKeyFormatIsATypedKeyStoreError() = runBlocking {
        val (_, link) = server.newUserLink()
        PhoneSignIn(dataDir(), GarbageKeyStore()).use { app ->
            assertFailsWith<AuthenticatorException.KeyStore> { app.enroll(link, "phone") }
            assertTrue(app.accounts().isEmpty(), "nothing stored after a failed enrollment")
        }
    }

    @Test
    fun malformedEnrollmentLinksAreTypedErrors() = runBlocking {
        PhoneSignIn(dataDir(), JcaKeyStore()).use { app ->
            for (link in listOf("", "not a link", "https://example.test/enroll", "phonesignin://enroll?v=2&server=x&code=y&fp=z")) {
                assertFailsWith<AuthenticatorException.InvalidEnrollmentUrl>("link: $link") { app.enroll(link, "phone") }
            }
        }
    }

    @Test
    fun malformedPushPayloadsAreTypedErrors() = runBlocking {
        PhoneSignIn(dataDir(), JcaKeyStore()).use { app ->
            for (data in listOf(emptyMap(), mapOf("psi_v" to "1"), mapOf("psi_v" to "9", "psi_aid" to "x", "psi_rid" to "y"), mapOf("hello" to "world"))) {
                assertFailsWith<AuthenticatorException.InvalidPushPayload>("data: $data") { app.onPushData(data) }
            }
            for (json in listOf("", "{", "[]", """{"aps": {}}""", """{"psi": {"v": 1, "aid": 5}}""")) {
                assertFailsWith<AuthenticatorException.InvalidPushPayload>("json: $json") { app.core.handlePushJson(json) }
                assertFailsWith<AuthenticatorException.InvalidPushPayload>("json: $json") { app.core.parsePushJson(json) }
            }
        }
    }

    @Test
    fun textThatIsNotUnicodeIsATypedErrorThroughTheFacade() = runBlocking {
        val lone = "\uD800"
        PhoneSignIn(dataDir(), JcaKeyStore()).use { app ->
            // A hostile FCM data value: the messaging service gets the invalid-push error it handles.
            assertFailsWith<AuthenticatorException.InvalidPushPayload> {
                app.onPushData(mapOf("psi_v" to "1", "psi_aid" to lone, "psi_rid" to "x"))
            }
            assertFailsWith<AuthenticatorException.InvalidEnrollmentUrl> { app.enroll("phonesignin://enroll?$lone", "phone") }
            assertFailsWith<AuthenticatorException.InvalidInput> { app.enablePhoneSignIn(lone) }
            assertFailsWith<AuthenticatorException.InvalidInput> { app.removeAccount(lone) }
            assertTrue(app.accounts().isEmpty(), "the core still answers")
        }
    }

    @Test
    fun emptyDataDirectoryIsATypedError() {
        assertFailsWith<AuthenticatorException.InvalidInput> { PhoneSignIn("", JcaKeyStore()) }
    }

    companion object {
        private lateinit var server: SigninServer

        @BeforeClass
        @JvmStatic
        fun startServer() {
            server = SigninServer.start()
        }

        @AfterClass
        @JvmStatic
        fun stopServer() {
            server.close()
        }
    }
}
