package org.phonesignin.android

import java.nio.ByteBuffer
import java.nio.file.Files
import java.security.SecureRandom
import javax.crypto.Cipher
import javax.crypto.Mac
import javax.crypto.spec.GCMParameterSpec
import javax.crypto.spec.SecretKeySpec
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertNull
import kotlin.test.assertTrue
import kotlinx.coroutines.runBlocking
import org.junit.AfterClass
import org.junit.BeforeClass
import org.junit.Test
import org.phonesignin.core.AuthenticatorException
import org.phonesignin.core.PlatformException
import org.phonesignin.core.SecretStore

/**
 * A `SecretStore` in plain JCA, shaped like [AndroidKeystoreSecretStore]: AES-256-GCM under a key
 * held in memory, the context as associated data, `iv || ciphertext || tag`.
 */
class JcaSecretStore : SecretStore {
    private val key = SecretKeySpec(ByteArray(32).also { SecureRandom().nextBytes(it) }, "AES")

    override suspend fun seal(context: String, plaintext: ByteArray): ByteArray {
        val iv = ByteArray(12).also { SecureRandom().nextBytes(it) }
        val cipher = Cipher.getInstance("AES/GCM/NoPadding")
        cipher.init(Cipher.ENCRYPT_MODE, key, GCMParameterSpec(128, iv))
        cipher.updateAAD(context.toByteArray())
        return iv + cipher.doFinal(plaintext)
    }

    override suspend fun unseal(context: String, sealed: ByteArray): ByteArray =
        try {
            val cipher = Cipher.getInstance("AES/GCM/NoPadding")
            cipher.init(Cipher.DECRYPT_MODE, key, GCMParameterSpec(128, sealed, 0, 12))
            cipher.updateAAD(context.toByteArray())
            cipher.doFinal(sealed, 12, sealed.size - 12)
        } catch (e: java.security.GeneralSecurityException) {
            throw PlatformException.Failed("unsealing failed")
        }
}

/**
 * The offline fallback's TOTP through the Kotlin facade (issue 11): the secret an enrollment
 * brings from the real signin-server, `otpauth://` imports whose codes match an independent
 * RFC 6238 computation (javax.crypto HMAC), removal, and typed errors.
 */
class TotpTest {
    private fun dataDir() = Files.createTempDirectory("phone").toString()

    /** RFC 6238 / RFC 4226 with the JDK's HMAC: the code at Unix time [secs]. */
    private fun reference(secret: ByteArray, secs: Long, digits: Int = 6, period: Long = 30, alg: String = "HmacSHA1"): String {
        val mac = Mac.getInstance(alg).apply { init(SecretKeySpec(secret, alg)) }
        val hash = mac.doFinal(ByteBuffer.allocate(8).putLong(secs / period).array())
        val offset = hash.last().toInt() and 15
        val value = ByteBuffer.wrap(hash, offset, 4).int and 0x7fffffff
        var mod = 1
        repeat(digits) { mod *= 10 }
        return (value % mod).toString().padStart(digits, '0')
    }

    @Test
    fun theEnrollmentBringsATotpAccountThatGoesWithTheAccount(): Unit = runBlocking {
        val (upn, link) = server.newUserLink()
        PhoneSignIn(dataDir(), JcaKeyStore(), JcaSecretStore()).use { phone ->
            val account = phone.enroll(link, "Kotlin test phone")
            val totp = phone.totpAccounts().single()
            assertEquals(account.accountId, totp.accountId)
            assertEquals(upn, totp.accountName)
            assertEquals(Triple("SHA1", 6u, 30u), Triple(totp.algorithm, totp.digits, totp.period))
            val code = phone.totpCode(totp)
            assertTrue(code.code.length == 6 && code.code.all { it.isDigit() }, code.code)
            assertTrue(code.secondsRemaining in 1u..30u)
            phone.removeAccount(account.accountId)
            assertTrue(phone.totpAccounts().isEmpty())
            assertFailsWith<AuthenticatorException.UnknownTotpAccount> { phone.totpCode(totp) }
        }
    }

    @Test
    fun importedAccountsShowRfc6238CodesUntilRemoved(): Unit = runBlocking {
        // "12345678901234567890" (RFC 6238's SHA-1 seed) in base32.
        val secret = "12345678901234567890".toByteArray()
        PhoneSignIn(dataDir(), JcaKeyStore(), JcaSecretStore()).use { phone ->
            val github = phone.addTotpAccount(
                "otpauth://totp/GitHub:bobby?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=GitHub",
            )
            assertEquals("GitHub", github.issuer)
            assertEquals("bobby", github.accountName)
            assertNull(github.accountId)
            val bank = phone.addTotpAccount(
                "otpauth://totp/Bank:b?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&algorithm=SHA256&digits=8&period=60",
            )
            val now = System.currentTimeMillis() / 1000
            val code = phone.totpCode(github).code
            assertTrue(code == reference(secret, now) || code == reference(secret, now + 30), code)
            val long = phone.totpCode(bank).code
            assertEquals(8, long.length)
            assertTrue(
                long == reference(secret, now, 8, 60, "HmacSHA256") || long == reference(secret, now + 60, 8, 60, "HmacSHA256"),
                long,
            )
            phone.removeTotpAccount(github)
            assertEquals(listOf(bank), phone.totpAccounts())
        }
    }

    @Test
    fun badUrisAndMissingOrFailingSecretStoresAreTypedErrors(): Unit = runBlocking {
        PhoneSignIn(dataDir(), JcaKeyStore(), JcaSecretStore()).use { phone ->
            val e = assertFailsWith<AuthenticatorException.InvalidTotpUri> {
                phone.addTotpAccount("otpauth://totp/x?secret=GEZDGNBVGY3TQOJQ&digits=12")
            }
            assertTrue("GEZDGNBV" !in e.reason, e.reason)
            assertFailsWith<AuthenticatorException.InvalidTotpUri> { phone.addTotpAccount("otpauth://totp/x?secret=\uD800") }
        }
        PhoneSignIn(dataDir(), JcaKeyStore()).use { phone ->
            assertFailsWith<AuthenticatorException.SecretStoreUnavailable> {
                phone.addTotpAccount("otpauth://totp/x?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")
            }
        }
        val exploding = object : SecretStore {
            override suspend fun seal(context: String, plaintext: ByteArray): ByteArray = throw StackOverflowError("boom")
            override suspend fun unseal(context: String, sealed: ByteArray): ByteArray = throw StackOverflowError("boom")
        }
        PhoneSignIn(dataDir(), JcaKeyStore(), exploding).use { phone ->
            // Even a java.lang.Error in the callback arrives typed (the facade guards it).
            assertFailsWith<AuthenticatorException.KeyStore> {
                phone.addTotpAccount("otpauth://totp/x?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")
            }
            assertTrue(phone.totpAccounts().isEmpty())
        }
    }

    /**
     * Hostile text through the TOTP methods of the raw core (SECURITY row 34): each call returns or
     * throws the typed error that input can cause, never a panic or another throwable.
     */
    @Test
    fun hostileTextThroughTheTotpMethodsIsTypedNeverAPanic(): Unit = runBlocking {
        PhoneSignIn(dataDir(), JcaKeyStore(), JcaSecretStore()).use { phone ->
            val core = phone.core
            var calls = 0
            suspend fun expect(what: String, allowed: Set<String>, block: suspend () -> Unit) {
                calls++
                try {
                    block()
                } catch (e: AuthenticatorException) {
                    val name = e::class.simpleName ?: "?"
                    assertTrue(name in allowed, "$what threw $name (${e.message}); expected one of $allowed")
                } catch (e: org.phonesignin.core.InternalException) {
                    throw AssertionError("a Rust panic crossed the FFI boundary in $what", e)
                }
            }
            for (text in HostileInputTest.HOSTILE_TEXT) {
                val short = text.take(16)
                expect("addTotpAccount($short)", setOf("InvalidTotpUri")) { phone.addTotpAccount(text) }
                expect("addTotpAccount(label $short)", setOf("InvalidTotpUri")) {
                    phone.addTotpAccount("otpauth://totp/$text?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")
                }
                expect("totpCode($short)", setOf("UnknownTotpAccount")) { core.totpCode(text) }
                expect("removeTotpAccount($short)", setOf("UnknownTotpAccount")) { core.removeTotpAccount(text) }
            }
            // Whatever was accepted has plain labels and shows codes.
            for (t in phone.totpAccounts()) {
                assertTrue((t.issuer + t.accountName).none { it.isISOControl() }, t.accountName.take(40))
                assertTrue(phone.totpCode(t).code.all { it.isDigit() })
            }
            assertTrue(calls >= 4 * HostileInputTest.HOSTILE_TEXT.size)
        }
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
