package org.phonesignin.android

import java.nio.file.Files
import kotlin.test.assertContentEquals
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertFalse
import kotlin.test.assertIs
import kotlin.test.assertNotNull
import kotlin.test.assertTrue
import kotlinx.coroutines.async
import kotlinx.coroutines.delay
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.AfterClass
import org.junit.BeforeClass
import org.junit.Test
import org.phonesignin.core.AccountSummary
import org.phonesignin.core.AuthenticatorException
import org.phonesignin.core.Decision
import org.phonesignin.core.PendingRequest
import org.phonesignin.core.PlatformException
import org.phonesignin.core.PushOutcome
import org.phonesignin.core.PushUpdateOutcome

/**
 * The whole phone sign-in ceremony from Kotlin, against a real signin-server on loopback, with
 * the keys in a Kotlin (JCA) key store that gives Android Keystore formats.
 */
class CeremonyTest {
    private class Phone(val upn: String, val keys: JcaKeyStore, val app: PhoneSignIn, val account: AccountSummary)

    /** Enrolls a fresh user's phone from its registration link and enables phone sign-in. */
    private suspend fun enrolledPhone(): Phone {
        val (upn, link) = server.newUserLink()
        val keys = JcaKeyStore()
        val app = PhoneSignIn(Files.createTempDirectory("phone").toString(), keys)
        val enrolled = app.enroll(link, "Kotlin test phone")
        assertEquals(upn, enrolled.upn)
        assertFalse(enrolled.phoneSignInEnabled)
        val account = app.enablePhoneSignIn(enrolled.accountId)
        assertTrue(account.phoneSignInEnabled)
        return Phone(upn, keys, app, account)
    }

    /** Starts a sign-in on the "page" and receives it on the phone by long-poll. */
    private suspend fun signInReachesPhone(phone: Phone, appName: String): Triple<String, String, PendingRequest> {
        val (id, number) = server.startSignIn(phone.upn, appName)
        val request = phone.app.waitForRequests(10u).single { it.requestId == id }
        return Triple(id, number, request)
    }

    @Test
    fun enrollEnableAndApproveWithTheTypedNumber() = runBlocking {
        val phone = enrolledPhone()
        // Android Keystore hands out SPKI DER public keys: the core accepted and normalised them.
        assertTrue(phone.keys.publicKeys.values.all { it.size == 91 && it[0] == 0x30.toByte() })
        val (id, number, request) = signInReachesPhone(phone, "Contoso Mail")

        assertEquals("Contoso Mail", request.appName)
        assertEquals("Unknown location", request.location) // loopback has no GeoIP location
        assertEquals(phone.upn, request.upn)
        assertTrue(request.numberMatching)
        phone.keys.requests.clear()
        assertEquals(Decision.APPROVED, phone.app.approve(request, number))
        assertEquals("approved", server.signInStatus(id))
        val approval = phone.keys.requests.single()
        assertTrue(approval.alias.endsWith(".passwordless"))
        assertEquals("Approve sign-in to ${request.serverName} as ${phone.upn}", approval.prompt)
    }

    @Test
    fun onlyApprovalSignaturesCarryAPromptDenyAndReportCarryNone() = runBlocking {
        val phone = enrolledPhone()
        // Enrollment and device authentication prompt for nothing; enabling phone sign-in
        // prompts once, through the new key.
        val prompted = phone.keys.requests.filter { it.prompt != null }
        assertEquals(1, prompted.size, "${phone.keys.requests}")
        assertTrue(prompted.single().alias.endsWith(".passwordless"))
        assertEquals("Enable phone sign-in for ${phone.upn}", prompted.single().prompt)

        val (denied, _, first) = signInReachesPhone(phone, "Contoso VPN")
        phone.keys.requests.clear()
        assertEquals(Decision.DENIED, phone.app.deny(first))
        assertEquals("denied", server.signInStatus(denied))
        val (reported, _, second) = signInReachesPhone(phone, "Contoso VPN")
        assertEquals(Decision.REPORTED, phone.app.reportFraud(second))
        assertEquals("reported", server.signInStatus(reported))
        val answers = phone.keys.requests.filter { it.alias.endsWith(".device") && phone.keys.signed.contains(it.alias) }
        assertTrue(answers.isNotEmpty())
        assertTrue(phone.keys.requests.all { it.prompt == null }, "${phone.keys.requests}")
    }

    @Test
    fun denyIsSignedAndTheServerRecordsIt() = runBlocking {
        val phone = enrolledPhone()
        val (id, _, request) = signInReachesPhone(phone, "Contoso Portal")
        assertEquals(Decision.DENIED, phone.app.deny(request))
        assertEquals("denied", server.signInStatus(id))
    }

    @Test
    fun wrongNumberIsATypedErrorAndTheRightOneStillWorks() = runBlocking {
        val phone = enrolledPhone()
        val (id, number, request) = signInReachesPhone(phone, "Contoso Mail")
        val wrong = if (number == "42") "43" else "42"
        val e = assertFailsWith<AuthenticatorException.WrongNumber> { phone.app.approve(request, wrong) }
        assertEquals(2u, e.attemptsLeft)
        assertEquals("pending", server.signInStatus(id))
        assertEquals(Decision.APPROVED, phone.app.approve(request, number))
        assertEquals("approved", server.signInStatus(id))
    }

    @Test
    fun refusedVerificationSignsNothing() = runBlocking {
        val phone = enrolledPhone()
        val (id, number, request) = signInReachesPhone(phone, "Contoso Mail")
        val signaturesBefore = phone.keys.signed.size

        phone.keys.refuseWith = { PlatformException.VerificationFailed() }
        assertFailsWith<AuthenticatorException.VerificationFailed> { phone.app.approve(request, number) }
        phone.keys.refuseWith = { PlatformException.Cancelled() }
        assertFailsWith<AuthenticatorException.UserCancelled> { phone.app.approve(request, number) }

        assertEquals(signaturesBefore, phone.keys.signed.size, "no signature without verification")
        assertEquals("pending", server.signInStatus(id))
        phone.keys.refuseWith = null
        assertEquals(Decision.APPROVED, phone.app.approve(request, number))
    }

    @Test
    fun fcmDataMapIsForwardedRawAndTheNotificationNeverShowsTheNumber() = runBlocking {
        val phone = enrolledPhone()
        val (id, number) = server.startSignIn(phone.upn, "Contoso HR")
        // What FirebaseMessagingService receives in RemoteMessage.data (docs/PROTOCOL.md §6.1).
        val data = mapOf("psi_v" to "1", "psi_aid" to phone.account.accountId, "psi_rid" to id)
        val outcome = phone.app.onPushData(data)
        val shown = assertIs<PushOutcome.ShowRequest>(outcome).request
        assertEquals(id, shown.requestId)

        val note = assertNotNull(SignInNotifications.forOutcome(outcome))
        // The whole text, line by line: account, app, location, server — nothing else, so never
        // the number. (A substring check for the number would be flaky: the UPN and the
        // server's port are digits too.)
        assertEquals("Approve sign-in?", note.title)
        assertEquals(
            listOf(phone.upn, "App: Contoso HR", "Location: Unknown location", shown.serverName),
            note.body.lines(),
        )

        assertEquals(Decision.APPROVED, phone.app.approve(shown, number))
        assertEquals(PushOutcome.AlreadyAnswered, phone.app.onPushData(data))
    }

    @Test
    fun aNewFcmTokenIsToldToTheServerAndTheChannelChanges() = runBlocking {
        val phone = enrolledPhone()
        assertTrue(server.admin("user", "show", "--upn", phone.upn).contains("push longpoll"))
        // What FirebaseMessagingService.onNewToken does.
        val results = phone.app.updatePushRegistration(PhoneSignIn.fcm("fcm-token-after-restore"))
        val result = results.single()
        assertEquals(phone.account.accountId, result.accountId)
        assertEquals(phone.upn, result.upn)
        assertEquals(PushUpdateOutcome.Updated, result.outcome)
        assertTrue(server.admin("user", "show", "--upn", phone.upn).contains("push fcm"))
        // A token that is not text never leaves the facade.
        assertFailsWith<AuthenticatorException.InvalidInput> {
            phone.app.updatePushRegistration(PhoneSignIn.fcm("bad\uD800token"))
        }
        assertTrue(server.admin("user", "show", "--upn", phone.upn).contains("push fcm"))
    }

    @Test
    fun cancellingTheLongWaitReturnsPromptlyAndThePhoneKeepsWorking() = runBlocking {
        val phone = enrolledPhone()
        val started = System.nanoTime()
        val waiting = async { phone.app.waitForRequests(60u) }
        delay(300)
        waiting.cancel()
        withTimeout(5_000) { runCatching { waiting.await() } }
        assertTrue(waiting.isCancelled)
        assertTrue(System.nanoTime() - started < 10_000_000_000, "the 60 s wait was cancelled")

        val (id, number, request) = signInReachesPhone(phone, "Contoso Mail")
        assertEquals(Decision.APPROVED, phone.app.approve(request, number))
        assertEquals("approved", server.signInStatus(id))
    }

    @Test
    fun generatedBindingsUseTheConfiguredPackage() {
        assertEquals("org.phonesignin.core", org.phonesignin.core.Authenticator::class.java.packageName)
        assertContentEquals(
            listOf("APPROVED", "DENIED", "REPORTED"),
            Decision.entries.map { it.name },
        )
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
