package org.phonesignin.android

import java.io.File
import java.io.IOException
import java.net.InetAddress
import java.net.ServerSocket
import java.nio.file.Files
import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.atomic.AtomicInteger
import kotlin.reflect.KClass
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertIs
import kotlin.test.assertTrue
import kotlin.test.fail
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.delay
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.AfterClass
import org.junit.BeforeClass
import org.junit.Test
import org.phonesignin.core.AccountSummary
import org.phonesignin.core.Authenticator
import org.phonesignin.core.AuthenticatorException
import org.phonesignin.core.Decision
import org.phonesignin.core.InternalException
import org.phonesignin.core.PendingRequest
import org.phonesignin.core.PushKind
import org.phonesignin.core.PushOutcome
import org.phonesignin.core.PushRegistration
import org.phonesignin.core.PushTarget
import org.phonesignin.core.webPushToken

/**
 * No panic crosses the FFI boundary (issue 9): hostile strings, maps and numbers go through every
 * exported method of the raw generated `Authenticator` (api-surface.txt). Each call either
 * returns a sane result or throws a typed [AuthenticatorException] of the kinds that input can
 * cause — never an [InternalException] (what uniffi makes of a Rust panic) or any other
 * throwable — and afterwards the same `Authenticator` still answers `accounts()` and still
 * enrolls, enables phone sign-in and approves against the real signin-server.
 */
class HostileInputTest {
    private fun dataDir() = Files.createTempDirectory("phone-hostile").toString()

    /**
     * One hostile call: its value, or the typed error it threw, which must be one of [allowed]
     * (all of [AuthenticatorException] when empty). A panic (InternalException) or any other
     * throwable fails the test, naming the call.
     */
    private suspend fun <T> hostile(
        what: String,
        vararg allowed: KClass<out AuthenticatorException>,
        block: suspend () -> T,
    ): Result<T> {
        calls.incrementAndGet()
        callsHere.incrementAndGet()
        val error = try {
            return Result.success(block()).also { outcomes.merge("returned", 1, Int::plus) }
        } catch (e: AuthenticatorException) {
            outcomes.merge(e::class.simpleName ?: "?", 1, Int::plus)
            e
        } catch (e: InternalException) {
            throw AssertionError("a Rust panic crossed the FFI boundary in $what: ${e.message}", e)
        } catch (e: CancellationException) {
            throw e
        } catch (e: Throwable) {
            throw AssertionError("$what threw ${e::class.qualifiedName}, not a typed AuthenticatorException", e)
        }
        if (allowed.isNotEmpty() && allowed.none { it.isInstance(error) }) {
            throw AssertionError(
                "$what threw ${error::class.simpleName} (${error.message}); expected one of " +
                    allowed.joinToString { it.simpleName ?: "?" },
                error,
            )
        }
        return Result.failure(error)
    }

    /** An enrolled account with phone sign-in and one pending request, on a raw core. */
    private class Enrolled(
        val core: Authenticator,
        val keys: JcaKeyStore,
        val upn: String,
        val account: AccountSummary,
        val request: PendingRequest,
        val number: String,
    )

    private suspend fun enrolledWithPendingRequest(): Enrolled {
        val keys = JcaKeyStore()
        val core = Authenticator(dataDir(), keys)
        val (upn, link) = server.newUserLink()
        val enrolled = core.enroll(link, "Kotlin hostile-input phone", PhoneSignIn.LONG_POLL)
        val account = core.enablePhoneSignIn(enrolled.accountId)
        val (id, number) = server.startSignIn(upn, "Contoso Mail")
        val request = core.poll(10u).single { it.requestId == id }
        return Enrolled(core, keys, upn, account, request, number)
    }

    /**
     * After the hostile calls the same core still works: it lists exactly the accounts it had,
     * and a fresh user enrolls, enables phone sign-in, receives a sign-in and approves it.
     */
    private suspend fun assertStillWorks(core: Authenticator, accountsBefore: List<AccountSummary>) {
        assertEquals(accountsBefore, core.accounts(), "the accounts are untouched")
        val (upn, link) = server.newUserLink()
        val enrolled = core.enroll(link, "Kotlin phone after hostile input", PhoneSignIn.LONG_POLL)
        assertEquals(upn, enrolled.upn)
        assertTrue(core.enablePhoneSignIn(enrolled.accountId).phoneSignInEnabled)
        val (id, number) = server.startSignIn(upn, "Contoso Portal")
        var request: PendingRequest? = null
        for (attempt in 1..3) {
            request = core.poll(10u).firstOrNull { it.requestId == id && it.accountId == enrolled.accountId }
            if (request != null) break
        }
        assertEquals(id, request?.requestId, "the new sign-in reached the phone")
        assertEquals(Decision.APPROVED, core.approve(enrolled.accountId, id, number))
        assertEquals("approved", server.signInStatus(id))
        assertEquals(
            accountsBefore.map { it.accountId }.toSet() + enrolled.accountId,
            core.accounts().map { it.accountId }.toSet(),
        )
    }

    @Test
    fun theHarnessFailsOnAPanicOrAnUntypedThrowableSoItCannotPassVacuously() {
        val callsBefore = calls.get()
        val outcomesBefore = HashMap(outcomes)
        runBlocking {
            val panic = assertFailsWith<AssertionError> { hostile("simulated") { throw InternalException("simulated panic") } }
            assertTrue(panic.message!!.contains("Rust panic crossed the FFI boundary"), panic.message)
            assertFailsWith<AssertionError> { hostile("simulated") { throw IllegalStateException("untyped") } }
            assertFailsWith<AssertionError> {
                hostile("simulated", AuthenticatorException.InvalidNumber::class) {
                    throw AuthenticatorException.Internal("a typed error of the wrong kind")
                }
            }
            assertTrue(hostile("simulated") { throw AuthenticatorException.NotEnrolled() }.isFailure)
        }
        // The simulated calls are not counted in the report.
        calls.set(callsBefore)
        outcomes.clear()
        outcomes.putAll(outcomesBefore)
    }

    @Test
    fun constructorRefusesHostileDataDirectoriesWithATypedErrorOrOpensAnEmptyStore() {
        runBlocking {
            val base = dataDir()
            val aFile = File(base, "a-file").apply { writeText("not a directory") }
            val garbageDb = File(base, "garbage-db").apply {
                mkdirs()
                File(this, "authenticator.sqlite3").writeBytes(ByteArray(4096) { (it * 31).toByte() })
            }
            val refused = listOf(
                "", " ", "\t\n\r ", "\u00A0\u2028\u3000",
                "\u0000", "$base/a\u0000b", "$base/${"A".repeat(MIB)}", "$base/" + "x/".repeat(3000),
                aFile.path, "${aFile.path}/below-a-file", "$base/../../etc/passwd", garbageDb.path,
            )
            for (dir in refused) {
                val outcome = hostile(
                    "Authenticator(${show(dir)})",
                    AuthenticatorException.InvalidInput::class,
                    AuthenticatorException.Storage::class,
                ) { Authenticator(dir, JcaKeyStore()) }
                outcome.getOrNull()?.close()
                assertTrue(outcome.isFailure, "Authenticator(${show(dir)}) opened")
            }
            // Unusual but legal directory names: a store opens there, and it is empty.
            for (name in HOSTILE_TEXT.filter { it.isNotBlank() && '\u0000' !in it && it.length < 200 && '/' !in it }) {
                val outcome = hostile("Authenticator(${show(name)})", AuthenticatorException.Storage::class) {
                    Authenticator("$base/d-$name", JcaKeyStore())
                }
                outcome.getOrNull()?.use { core -> assertEquals(emptyList(), core.accounts()) }
            }
            // And a normal one still opens and works.
            Authenticator(dataDir(), JcaKeyStore()).use { core -> assertStillWorks(core, emptyList()) }
            report("constructor")
        }
    }

    @Test
    fun enrollRefusesHostileLinksDeviceNamesAndPushTokensAndTheSameCoreThenEnrolls() {
        runBlocking {
            Authenticator(dataDir(), JcaKeyStore()).use { core ->
                val (_, realLink) = server.newUserLink()
                val query = realLink.substringAfter('?').split('&').associate { it.substringBefore('=') to it.substringAfter('=') }
                val fp = query.getValue("fp")
                val serverParam = query.getValue("server")
                val bogusCode = "A".repeat(22)
                fun link(v: String = "1", srv: String = serverParam, code: String = bogusCode, f: String = fp) =
                    "phonesignin://enroll?v=$v&server=$srv&code=$code&fp=$f"

                val links = HOSTILE_TEXT + listOf(
                    link(v = ""), link(v = "4"), link(v = "999"), link(v = "-1"), link(v = "%D9%A4%D9%A2"),
                    link(v = "1%0A"), link(v = "18446744073709551616"), link(v = "1%00"),
                    link(srv = "javascript:alert(1)"), link(srv = "file:///etc/passwd"),
                    link(srv = "data:text/html,%3Cscript%3E"), link(srv = "ftp://127.0.0.1/"),
                    link(srv = "http://evil.test/"), link(srv = "https://127.0.0.1:1/"), link(srv = ""),
                    link(srv = "$serverParam..%2F..%2Fetc%2Fpasswd"), link(srv = "http://%00/"),
                    link(code = ""), link(code = "A".repeat(21)), link(code = "A".repeat(23)),
                    link(code = "+".repeat(22)), link(code = "%00".repeat(22)), link(code = "A".repeat(MIB)),
                    link(code = "'%3B%20DROP%20TABLE%20accounts%3B%20--"), link(code = "..%2F..%2Fetc%2Fpasswd"),
                    link(f = ""), link(f = "A".repeat(42)), link(f = "=".repeat(43)), link(f = "A".repeat(43)),
                    link() + "&code=$bogusCode", link() + "&v=1", link() + "&x=" + "y".repeat(MIB),
                    link() + "&x=y".repeat(10_000), link().replace("enroll", "ENROLL"), link().replace("?", "#"),
                    link() + "#" + "\u0000", "  " + link().replace("&", "\n&") + "  ",
                )
                for (l in links) {
                    hostile(
                        "enroll(${show(l)})",
                        AuthenticatorException.InvalidEnrollmentUrl::class,
                        AuthenticatorException.Network::class,
                        AuthenticatorException.ServerRejected::class,
                        AuthenticatorException.ServerKeyMismatch::class,
                    ) { core.enroll(l, "phone", PhoneSignIn.LONG_POLL) }
                        .onSuccess { fail("enroll(${show(l)}) enrolled ${it.upn}") }
                }
                // Device names and push tokens, with a well-formed link whose code the server does not know:
                // the core refuses what it must, the server refuses the rest.
                val serverRefusals = arrayOf(
                    AuthenticatorException.InvalidInput::class,
                    AuthenticatorException.ServerRejected::class,
                )
                for (name in HOSTILE_TEXT) {
                    hostile("enroll(deviceName = ${show(name)})", *serverRefusals) {
                        core.enroll(link(), name, PhoneSignIn.LONG_POLL)
                    }.onSuccess { fail("enrolled with an unknown code") }
                }
                for (kind in PushKind.entries) {
                    for (token in HOSTILE_TEXT + listOf("x".repeat(4096), "x".repeat(4097))) {
                        hostile("enroll(push = $kind ${show(token)})", *serverRefusals) {
                            core.enroll(link(), "phone", PushRegistration(kind, token))
                        }.onSuccess { fail("enrolled with an unknown code") }
                    }
                }
                assertEquals(emptyList(), core.accounts())
                // The real link was never used by any of that: it still enrolls, with a device name
                // that is hostile to SQL and paths but plain text.
                val account = core.enroll(realLink, "'; DROP TABLE accounts; -- ../../etc/passwd 👪", PhoneSignIn.LONG_POLL)
                assertEquals(listOf(account), core.accounts())
                assertStillWorks(core, listOf(account))
            }
            report("enroll")
        }
    }

    @Test
    fun aDeviceNameOverTheProtocols200BytesIsRefusedByTheCoreBeforeTheServerAndTheLinkStillWorks() {
        runBlocking {
            Authenticator(dataDir(), JcaKeyStore()).use { core ->
                val (upn, link) = server.newUserLink()
                // 64 characters (the core's limit) of 4 bytes each: 256 bytes, over the 200 bytes the
                // server allows (PROTOCOL.md §5.2). Refused locally, as InvalidInput; the server would
                // answer ServerRejected(invalid_request).
                for (name in listOf("😀".repeat(64), "😀".repeat(50) + "a", "𝟒".repeat(51))) {
                    hostile("enroll(${name.length} UTF-16 units)", AuthenticatorException.InvalidInput::class) {
                        core.enroll(link, name, PhoneSignIn.LONG_POLL)
                    }.onSuccess { fail("enrolled with a ${name.toByteArray().size}-byte device name") }
                }
                assertEquals(emptyList(), core.accounts(), "nothing stored")
                // Exactly 200 bytes (50 emoji) is allowed, and the link was never used up.
                assertEquals(upn, core.enroll(link, "😀".repeat(50), PhoneSignIn.LONG_POLL).upn)
            }
            report("device name limits")
        }
    }

    @Test
    fun hostileAccountIdsNeverReachAnAccountAndTheRealAccountAndRequestAreUntouched() {
        runBlocking {
            val phone = enrolledWithPendingRequest()
            phone.core.use { core ->
                val before = core.accounts()
                val realAid = phone.account.accountId
                val realRid = phone.request.requestId
                val badIds = HOSTILE_TEXT + idVariants(realAid) + idVariants(realRid)
                val malformedOrUnknown = arrayOf(
                    AuthenticatorException.InvalidInput::class,
                    AuthenticatorException.NotEnrolled::class,
                )
                val unknownRequest = arrayOf(
                    AuthenticatorException.InvalidInput::class,
                    AuthenticatorException.UnknownRequest::class,
                )
                for (aid in badIds) {
                    val s = show(aid)
                    hostile("enablePhoneSignIn($s)", *malformedOrUnknown) { core.enablePhoneSignIn(aid) }
                        .onSuccess { fail("enablePhoneSignIn($s) succeeded") }
                    hostile("removeAccount($s)", *malformedOrUnknown) { core.removeAccount(aid) }
                        .onSuccess { fail("removeAccount($s) succeeded") }
                    hostile("fetchRequest($s, real)", *malformedOrUnknown) { core.fetchRequest(aid, realRid) }
                        .onSuccess { fail("fetchRequest($s, real) succeeded") }
                    hostile("approve($s, real)", *unknownRequest) { core.approve(aid, realRid, phone.number) }
                        .onSuccess { fail("approve($s, real) succeeded") }
                    hostile("deny($s, real)", *unknownRequest) { core.deny(aid, realRid) }
                        .onSuccess { fail("deny($s, real) succeeded") }
                    hostile("reportFraud($s, real)", *unknownRequest) { core.reportFraud(aid, realRid) }
                        .onSuccess { fail("reportFraud($s, real) succeeded") }
                }
                assertEquals("pending", server.signInStatus(realRid))
                assertEquals(listOf(phone.request), core.pendingRequests())
                assertEquals(2, phone.keys.publicKeys.size, "no key was generated for a hostile id")
                assertStillWorks(core, before)
            }
            report("account ids")
        }
    }

    @Test
    fun hostileRequestIdsAndNumbersLeaveTheRealRequestPendingThenTheExactNumberApproves() {
        runBlocking {
            val phone = enrolledWithPendingRequest()
            phone.core.use { core ->
                val before = core.accounts()
                val aid = phone.account.accountId
                val realRid = phone.request.requestId
                val badIds = HOSTILE_TEXT + idVariants(realRid) + idVariants(aid)
                // The server refuses a malformed id (ServerRejected(invalid_request)); one it has
                // never issued is "not your request": UnknownRequest, as from approve.
                val fetchRefusals = arrayOf(
                    AuthenticatorException.InvalidInput::class,
                    AuthenticatorException.UnknownRequest::class,
                    AuthenticatorException.ServerRejected::class,
                )
                val unknownRequest = arrayOf(
                    AuthenticatorException.InvalidInput::class,
                    AuthenticatorException.UnknownRequest::class,
                )
                for (rid in badIds) {
                    val s = show(rid)
                    hostile("fetchRequest(real, $s)", *fetchRefusals) { core.fetchRequest(aid, rid) }
                        .onSuccess { fail("fetchRequest(real, $s) succeeded") }
                    hostile("approve(real, $s)", *unknownRequest) { core.approve(aid, rid, phone.number) }
                        .onSuccess { fail("approve(real, $s) succeeded") }
                    hostile("deny(real, $s)", *unknownRequest) { core.deny(aid, rid) }
                        .onSuccess { fail("deny(real, $s) succeeded") }
                    hostile("reportFraud(real, $s)", *unknownRequest) { core.reportFraud(aid, rid) }
                        .onSuccess { fail("reportFraud(real, $s) succeeded") }
                }
                // Both ids hostile at once.
                for ((a, r) in HOSTILE_TEXT.zip(HOSTILE_TEXT.reversed())) {
                    hostile("approve(${show(a)}, ${show(r)})", *unknownRequest) { core.approve(a, r, phone.number) }
                    hostile("deny(${show(a)}, ${show(r)})", *unknownRequest) { core.deny(a, r) }
                    hostile("reportFraud(${show(a)}, ${show(r)})", *unknownRequest) { core.reportFraud(a, r) }
                    hostile("fetchRequest(${show(a)}, ${show(r)})", AuthenticatorException.InvalidInput::class) {
                        core.fetchRequest(a, r)
                    }
                }
                // Ids are taken exactly as given (PROTOCOL.md §2): with white space around them they are
                // malformed, never trimmed into the real ones.
                for ((a, r) in listOf(" $aid\n" to realRid, aid to "\t$realRid ", "$aid\n" to "$realRid\n")) {
                    hostile("fetchRequest(padded ${show(a)}, ${show(r)})", AuthenticatorException.InvalidInput::class) {
                        core.fetchRequest(a, r)
                    }.onSuccess { fail("fetchRequest(${show(a)}, ${show(r)}) succeeded") }
                    hostile("approve(padded ${show(a)}, ${show(r)})", AuthenticatorException.InvalidInput::class) {
                        core.approve(a, r, phone.number)
                    }.onSuccess { fail("approve(${show(a)}, ${show(r)}) succeeded") }
                }

                // Numbers that are not two ASCII digits are refused before anything is signed or sent.
                val signedBefore = phone.keys.signed.size
                for (typed in HOSTILE_NUMBERS) {
                    hostile("approve(real, real, ${show(typed)})", AuthenticatorException.InvalidNumber::class) {
                        core.approve(aid, realRid, typed)
                    }.onSuccess { fail("approve with ${show(typed)} succeeded") }
                }
                assertEquals(signedBefore, phone.keys.signed.size, "nothing signed for a malformed number")
                assertEquals("pending", server.signInStatus(realRid))
                assertEquals(listOf(phone.request), core.pendingRequests())

                // The number is the text, byte for byte (PROTOCOL.md §5.6): "42\n", " 42" or a no-break
                // space are refused before anything is signed, not trimmed into 42; no attempt is used.
                for (padded in listOf("${phone.number}\n", " ${phone.number}", "\t${phone.number}", "${phone.number}\u00A0")) {
                    hostile("approve(real, real, ${show(padded)})", AuthenticatorException.InvalidNumber::class) {
                        core.approve(aid, realRid, padded)
                    }.onSuccess { fail("approve with ${show(padded)} succeeded") }
                }
                assertEquals(signedBefore, phone.keys.signed.size, "nothing signed for a padded number")
                val wrong = if (phone.number == "42") "43" else "42"
                val e = hostile("approve(real, real, wrong)", AuthenticatorException.WrongNumber::class) {
                    core.approve(aid, realRid, wrong)
                }.exceptionOrNull()
                assertEquals(2u, assertIs<AuthenticatorException.WrongNumber>(e).attemptsLeft)
                assertEquals(Decision.APPROVED, hostile("approve(real, real, number)") {
                    core.approve(aid, realRid, phone.number)
                }.getOrThrow())
                assertEquals("approved", server.signInStatus(realRid))
                // Answered: any further answer is a typed refusal.
                for (typed in listOf(phone.number, "", "٤٢")) {
                    hostile(
                        "approve(answered, ${show(typed)})",
                        AuthenticatorException.AlreadyAnswered::class,
                        AuthenticatorException.InvalidNumber::class,
                    ) { core.approve(aid, realRid, typed) }.onSuccess { fail("answered twice") }
                }
                hostile("deny(answered)", AuthenticatorException.AlreadyAnswered::class) { core.deny(aid, realRid) }
                hostile("reportFraud(answered)", AuthenticatorException.AlreadyAnswered::class) { core.reportFraud(aid, realRid) }
                assertStillWorks(core, before)
            }
            report("request ids and numbers")
        }
    }

    @Test
    fun hostilePushJsonIsParsedOrRefusedAsInvalidPushPayloadAndHandledWithoutPanic() {
        runBlocking {
            val phone = enrolledWithPendingRequest()
            phone.core.use { core ->
                val before = core.accounts()
                val aid = phone.account.accountId
                val rid = phone.request.requestId
                val strangerAid = "QUJDREVGR0hJSktMTU5PUA"
                val strangerRid = "AAAAAAAAAAAAAAAAAAAAAA"
                fun env(a: String, r: String, v: String = "1") = """{"v":$v,"aid":"$a","rid":"$r"}"""
                val deep = "[".repeat(10_000) + "]".repeat(10_000)
                val hugeKey = "k".repeat(MIB)
                val payloads = HOSTILE_TEXT + listOf(
                    deep, "[".repeat(10_000), "{\"a\":".repeat(10_000) + "1" + "}".repeat(10_000),
                    """{"psi":$deep}""", """{"psi":{"v":1,"aid":$deep,"rid":"$strangerRid"}}""",
                    """{"$hugeKey":1}""", """{"aps":{"$hugeKey":"x"}}""",
                    """{"psi":"${env(strangerAid, strangerRid).replace("\"", "\\\"")}"}""",
                    """{"psi":[]}""", """{"psi":null}""", """{"psi":1}""", """{"psi":true}""", "[${env(aid, rid)}]",
                    env(strangerAid, strangerRid, "\"1\""), env(strangerAid, strangerRid, "1.0"),
                    env(strangerAid, strangerRid, "-1"), env(strangerAid, strangerRid, "1e0"),
                    env(strangerAid, strangerRid, "18446744073709551617"), env(strangerAid, strangerRid, "true"),
                    env(strangerAid, strangerRid, "null"), env(strangerAid, strangerRid, "1e400"),
                    env(strangerAid, strangerRid, "0"), env(strangerAid, strangerRid, "2"),
                    """{"v":1,"aid":5,"rid":"$strangerRid"}""", """{"v":1,"aid":null,"rid":"$strangerRid"}""",
                    """{"v":1,"aid":["$strangerAid"],"rid":"$strangerRid"}""", """{"v":1,"aid":{},"rid":false}""",
                    """{"v":1,"aid":"$strangerAid"}""", """{"v":1,"rid":"$strangerRid"}""",
                    """{"v":1,"aid":"\ud800","rid":"$strangerRid"}""", """{"v":1,"aid":"\u0000","rid":"\u0000"}""",
                    "{\"v\":1,\"aid\":\"$strangerAid\u0000\",\"rid\":\"$strangerRid\"}",
                    env(strangerAid, strangerRid) + "garbage", "\uFEFF" + env(strangerAid, strangerRid),
                    env("../../etc/passwd", "'; DROP TABLE accounts; --"), env("javascript:alert(1)", "file:///etc/passwd"),
                    env(" $strangerAid", strangerRid), env(strangerAid.lowercase() + "=", strangerRid),
                    """{"psi":${env(strangerAid, strangerRid)},"psi":{}}""",
                    "{" + (1..10_000).joinToString(",") { "\"k$it\":$it" } + "}",
                    "\"" + "\\u0000".repeat(10_000) + "\"", "1", "null", "\"psi\"", "-0", "1e400",
                )
                // Well-formed envelopes: parsed to exactly their ids, whatever surrounds them.
                val wellFormed = listOf(
                    env(strangerAid, strangerRid) to PushTarget(strangerAid, strangerRid),
                    """{"aps":{"alert":"$hugeKey"},"psi":${env(strangerAid, strangerRid)}}""" to PushTarget(strangerAid, strangerRid),
                    """{"$hugeKey":[[[]]],"psi":${env(aid, strangerRid)}}""" to PushTarget(aid, strangerRid),
                    // A JSON escape spells the same id.
                    """{"v":1,"aid":"\u0051UJDREVGR0hJSktMTU5PUA","rid":"$strangerRid"}""" to PushTarget(strangerAid, strangerRid),
                    """{"psi":${env(aid, rid)}}""" to PushTarget(aid, rid),
                )
                for (json in payloads) {
                    val s = show(json)
                    val parsed = hostile("parsePushJson($s)", AuthenticatorException.InvalidPushPayload::class) {
                        core.parsePushJson(json)
                    }
                    parsed.onSuccess { assertWellFormedIds(it, "parsePushJson($s)") }
                    val handled = hostile(
                        "handlePushJson($s)",
                        AuthenticatorException.InvalidPushPayload::class,
                        AuthenticatorException.ServerRejected::class,
                    ) { core.handlePushJson(json) }
                    handled.onSuccess {
                        assertTrue(it == PushOutcome.UnknownAccount || it == PushOutcome.ShowRequest(phone.request), "handlePushJson($s) gave $it")
                    }
                    val refusedAsPayload = handled.exceptionOrNull() is AuthenticatorException.InvalidPushPayload
                    assertEquals(parsed.isFailure, refusedAsPayload, "handlePushJson parses as parsePushJson does: $s")
                }
                for ((json, target) in wellFormed) {
                    assertEquals(target, hostile("parsePushJson(well-formed ${show(json)})") { core.parsePushJson(json) }.getOrThrow())
                }
                // A push names a request; it proves nothing. Unknown accounts are UnknownAccount, the
                // real request is shown (fetched over the signed channel), unknown requests are refused.
                assertEquals(PushOutcome.UnknownAccount, hostile("handlePushJson(stranger)") { core.handlePushJson(env(strangerAid, strangerRid)) }.getOrThrow())
                val shown = hostile("handlePushJson(real)") { core.handlePushJson("""{"aps":{},"psi":${env(aid, rid)}}""") }.getOrThrow()
                assertEquals(phone.request, assertIs<PushOutcome.ShowRequest>(shown).request)
                hostile("handlePushJson(real account, unknown request)", AuthenticatorException.UnknownRequest::class) {
                    core.handlePushJson(env(aid, strangerRid))
                }.onSuccess { fail("an unknown request was shown: $it") }
                assertEquals(listOf(phone.request), core.pendingRequests())
                assertEquals("pending", server.signInStatus(rid))
                assertStillWorks(core, before)
            }
            report("push JSON")
        }
    }

    @Test
    fun hostilePushDataMapsAreParsedOrRefusedAsInvalidPushPayloadAndHandledWithoutPanic() {
        runBlocking {
            val phone = enrolledWithPendingRequest()
            phone.core.use { core ->
                val before = core.accounts()
                val aid = phone.account.accountId
                val rid = phone.request.requestId
                val strangerAid = "QUJDREVGR0hJSktMTU5PUA"
                val strangerRid = "AAAAAAAAAAAAAAAAAAAAAA"
                val valid = mapOf("psi_v" to "1", "psi_aid" to strangerAid, "psi_rid" to strangerRid)
                val hugeKey = "k".repeat(MIB)
                val maps = buildList {
                    for (h in HOSTILE_TEXT + HOSTILE_NUMBERS) {
                        add(valid + ("psi_v" to h))
                        add(valid + ("psi_aid" to h))
                        add(valid + ("psi_rid" to h))
                        add(mapOf(h to h))
                    }
                    for (v in listOf("1.0", "true", "[1]", "{\"v\":1}", "\"1\"", " 1", "1 ", "0", "2", "4294967297", "1\u0000")) {
                        add(valid + ("psi_v" to v))
                    }
                    add(emptyMap())
                    add(mapOf("psi" to """{"v":1,"aid":"$strangerAid","rid":"$strangerRid"}"""))
                    add(valid.mapKeys { it.key.uppercase() })
                    add(valid.mapKeys { " ${it.key}" })
                    add(valid.mapKeys { "${it.key}\u0000" })
                    add(valid - "psi_v")
                    add(valid - "psi_aid")
                    add(valid - "psi_rid")
                    add(mapOf(hugeKey to "1"))
                    add((1..10_000).associate { "k$it" to "v$it" })
                }
                for (data in maps) {
                    val s = show(data.toString())
                    val parsed = hostile("parsePushData($s)", AuthenticatorException.InvalidPushPayload::class) {
                        core.parsePushData(data)
                    }
                    parsed.onSuccess {
                        assertEquals(PushTarget(data.getValue("psi_aid"), data.getValue("psi_rid")), it, "parsePushData($s)")
                        assertWellFormedIds(it, "parsePushData($s)")
                    }
                    hostile(
                        "handlePushData($s)",
                        AuthenticatorException.InvalidPushPayload::class,
                        AuthenticatorException.ServerRejected::class,
                    ) { core.handlePushData(data) }
                        .onSuccess { assertEquals(PushOutcome.UnknownAccount, it, "handlePushData($s)") }
                }
                // Well-formed maps with hostile extras are still what they name.
                for (extra in listOf(mapOf(hugeKey to hugeKey), HOSTILE_TEXT.associateWith { it }, (1..10_000).associate { "k$it" to "v$it" })) {
                    val data = extra + valid
                    assertEquals(PushTarget(strangerAid, strangerRid), hostile("parsePushData(valid + extras)") { core.parsePushData(data) }.getOrThrow())
                    assertEquals(PushOutcome.UnknownAccount, hostile("handlePushData(valid + extras)") { core.handlePushData(data) }.getOrThrow())
                }
                val real = mapOf("psi_v" to "1", "psi_aid" to aid, "psi_rid" to rid)
                val shown = hostile("handlePushData(real)") { core.handlePushData(real + (hugeKey to "x")) }.getOrThrow()
                assertEquals(phone.request, assertIs<PushOutcome.ShowRequest>(shown).request)
                hostile("handlePushData(real account, unknown request)", AuthenticatorException.UnknownRequest::class) {
                    core.handlePushData(real + ("psi_rid" to strangerRid))
                }.onSuccess { fail("an unknown request was shown: $it") }
                assertEquals(listOf(phone.request), core.pendingRequests())
                assertStillWorks(core, before)
            }
            report("push data maps")
        }
    }

    /** No answer from [port] on loopback (the listener there stopped), within a few seconds. */
    private suspend fun assertNothingListensOn(port: UShort) {
        withTimeout(5_000) {
            while (true) {
                try {
                    BrowserBindingTest.announce(listenerUrl(port), CHALLENGE, origin = null)
                } catch (e: IOException) {
                    break // refused, or a kept-alive connection closed by the stopped listener
                }
                delay(50)
            }
        }
    }

    @Test
    fun browserListenerOnATakenPortIsATypedErrorStartAndStopInAnyOrderAreFineAndHostileRequestsAre4xx() {
        runBlocking {
            Authenticator(dataDir(), JcaKeyStore()).use { core ->
                val before = core.accounts()
                repeat(3) { hostile("stopBrowserListener() without a listener") { core.stopBrowserListener() }.getOrThrow() }

                // A port another socket holds: a typed error, never a panic, and no listener.
                ServerSocket(0, 50, InetAddress.getLoopbackAddress()).use { taken ->
                    val port = taken.localPort.toUShort()
                    hostile("startBrowserListener($port) on a taken port", AuthenticatorException.InvalidInput::class) {
                        core.startBrowserListener(port)
                    }.onSuccess { fail("a listener started on a port already taken: $it") }
                }
                hostile("stopBrowserListener() after a failed start") { core.stopBrowserListener() }.getOrThrow()

                // Started twice: the second replaces the first, whose port stops answering.
                val first = hostile("startBrowserListener(0)") { core.startBrowserListener(0u) }.getOrThrow()
                assertEquals(403, BrowserBindingTest.announce(listenerUrl(first), CHALLENGE, origin = null).statusCode())
                val second = hostile("startBrowserListener(0) while one runs") { core.startBrowserListener(0u) }.getOrThrow()
                if (second != first) assertNothingListensOn(first)
                // The same port again, at once: the core closes the old listener's socket before it
                // binds (what an app does on every return to the foreground).
                val again = hostile("startBrowserListener($second) while listening there") {
                    core.startBrowserListener(second)
                }.getOrThrow()
                assertEquals(second, again)
                // Another Authenticator (another app) cannot take the port this one holds.
                Authenticator(dataDir(), JcaKeyStore()).use { other ->
                    hostile("another core's startBrowserListener($again)", AuthenticatorException.InvalidInput::class) {
                        other.startBrowserListener(again)
                    }.onSuccess { fail("two listeners on one port: $it") }
                }

                // Hostile requests to the listener: each refused with a 4xx, and it goes on answering.
                val url = listenerUrl(again)
                val origin = "https://signin.contoso.test"
                fun status(method: String, body: String?, origin: String?, at: String = url): Int {
                    calls.incrementAndGet()
                    callsHere.incrementAndGet()
                    return BrowserBindingTest.call(at, method, body, origin).statusCode()
                }
                assertEquals(403, status("POST", CHALLENGE, null), "no Origin: not a page")
                assertEquals(403, status("POST", CHALLENGE, "null"), "an opaque origin")
                assertEquals(403, status("POST", CHALLENGE, "https://" + "a".repeat(300)), "an overlong origin")
                assertEquals(403, status("OPTIONS", null, null), "a preflight without Origin")
                assertEquals(404, status("POST", CHALLENGE, origin, at = url.replace("/v1/browser-binding", "/v1/other")))
                assertEquals(405, status("GET", null, origin))
                for (body in listOf("", "not a challenge", CHALLENGE.dropLast(1), CHALLENGE + "A", "%" + CHALLENGE.drop(1), "\u0000".repeat(8))) {
                    assertEquals(400, status("POST", body, origin), "body ${show(body)}")
                }
                assertEquals(413, status("POST", "A".repeat(4096), origin), "a body over the listener's bound")
                assertEquals(204, status("OPTIONS", null, origin), "the preflight of a page")
                assertEquals(204, status("POST", CHALLENGE, origin), "a page")

                repeat(2) { hostile("stopBrowserListener()") { core.stopBrowserListener() }.getOrThrow() }
                assertNothingListensOn(again)
                assertStillWorks(core, before)
            }
            // Through the facade (what apps call on every return to the foreground): starting
            // again on the port it holds, or just released, always listens there again.
            PhoneSignIn(dataDir(), JcaKeyStore()).use { phone ->
                val port = phone.startBrowserListener(0u)
                repeat(5) { assertEquals(port, phone.startBrowserListener(port), "restart ${it + 1} on $port") }
                repeat(2) { phone.stopBrowserListener() }
                assertEquals(port, phone.startBrowserListener(port), "start on $port after a stop")
                assertEquals(403, BrowserBindingTest.announce(listenerUrl(port), CHALLENGE, origin = null).statusCode())
                phone.stopBrowserListener()
                assertNothingListensOn(port)
            }
            report("browser listener")
        }
    }

    @Test
    fun pollWithExtremeWaitsAnswersAndCancelPollEndsEvenTheLongestWait() {
        runBlocking {
            Authenticator(dataDir(), JcaKeyStore()).use { core ->
                // No accounts: every wait answers at once, with nothing.
                for (wait in listOf(0u, 1u, 60u, 61u, Int.MAX_VALUE.toUInt(), UInt.MAX_VALUE)) {
                    assertEquals(emptyList(), withTimeout(10_000) { hostile("poll($wait) without accounts") { core.poll(wait) }.getOrThrow() })
                }
                repeat(1_000) { hostile("cancelPoll() with nothing to cancel") { core.cancelPoll() } }
                val (upn, link) = server.newUserLink()
                val account = core.enroll(link, "phone", PhoneSignIn.LONG_POLL)
                core.enablePhoneSignIn(account.accountId)
                assertEquals(emptyList(), hostile("poll(0)") { core.poll(0u) }.getOrThrow())
                // The largest wait (capped at 60 s by the core) ends as soon as cancelPoll is called.
                for (wait in listOf(UInt.MAX_VALUE, Int.MAX_VALUE.toUInt() + 1u, 61u)) {
                    val started = System.nanoTime()
                    val polling = async(Dispatchers.Default) { hostile("poll($wait)") { core.poll(wait) } }
                    withTimeout(15_000) {
                        while (polling.isActive) {
                            delay(100)
                            hostile("cancelPoll()") { core.cancelPoll() }
                        }
                    }
                    assertEquals(emptyList(), polling.await().getOrThrow())
                    assertTrue(System.nanoTime() - started < 15_000_000_000, "poll($wait) was cancelled")
                }
                repeat(100) { hostile("pendingRequests()") { core.pendingRequests() }.getOrThrow() }
                // A poll that is not cancelled still delivers.
                val (id, number) = server.startSignIn(upn, "Contoso Mail")
                val request = hostile("poll(UInt.MAX_VALUE) with a request pending") { core.poll(UInt.MAX_VALUE) }.getOrThrow().single()
                assertEquals(id, request.requestId)
                assertEquals(Decision.APPROVED, core.approve(account.accountId, id, number))
                assertStillWorks(core, core.accounts())
            }
            report("poll")
        }
    }

    @Test
    fun loneSurrogatesInEveryTextArgumentAreATypedInvalidInputAndNothingReachesTheCore() {
        // Kotlin strings may hold unpaired UTF-16 surrogates; Rust strings may not. Every text
        // argument of every exported call (api-surface.txt: parameters, record fields, map keys
        // and values, constructors, webPushToken) is refused as AuthenticatorException.InvalidInput,
        // before the core runs: never CharacterCodingException, never a panic.
        runBlocking {
            val phone = enrolledWithPendingRequest()
            phone.core.use { core ->
                val before = core.accounts()
                val high = Char(0xD800).toString()
                val low = Char(0xDFFF).toString()
                val aid = phone.account.accountId
                val rid = phone.request.requestId
                val lone = listOf(high, low, low + high, "a${high}b", aid + high, high + aid, "\u0000$high", high.repeat(MIB))
                val refusals = AtomicInteger()
                suspend fun refused(what: String, block: suspend () -> Any?) {
                    calls.incrementAndGet()
                    callsHere.incrementAndGet()
                    val e = try {
                        block()
                        fail("$what: a lone surrogate was accepted")
                    } catch (e: AuthenticatorException.InvalidInput) {
                        e
                    } catch (e: InternalException) {
                        throw AssertionError("a Rust panic crossed the FFI boundary in $what: ${e.message}", e)
                    } catch (e: Throwable) {
                        throw AssertionError("$what threw ${e::class.qualifiedName}, not AuthenticatorException.InvalidInput", e)
                    }
                    assertTrue("surrogate" in e.reason, "$what: ${e.reason}")
                    outcomes.merge("InvalidInput", 1, Int::plus)
                    refusals.incrementAndGet()
                }
                val link = server.newUserLink().second
                val totp = "otpauth://totp/Contoso:bob?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Contoso"
                for (s in lone) {
                    refused("Authenticator(dataDir)") { Authenticator(dataDir() + "/" + s, JcaKeyStore()) }
                    refused("Authenticator.withSecretStore(dataDir)") {
                        Authenticator.withSecretStore(dataDir() + "/" + s, JcaKeyStore(), JcaSecretStore())
                    }
                    refused("enroll(link)") { core.enroll(s, "phone", PhoneSignIn.LONG_POLL) }
                    refused("enroll(deviceName)") { core.enroll(link, s, PhoneSignIn.LONG_POLL) }
                    refused("enroll(push token)") { core.enroll(link, "phone", PushRegistration(PushKind.FCM, s)) }
                    refused("enablePhoneSignIn") { core.enablePhoneSignIn(s) }
                    refused("removeAccount") { core.removeAccount(s) }
                    refused("parsePushJson") { core.parsePushJson(s) }
                    refused("parsePushJson(in envelope)") { core.parsePushJson("""{"v":1,"aid":"$s","rid":"$rid"}""") }
                    refused("handlePushJson") { core.handlePushJson(s) }
                    refused("parsePushData(value)") { core.parsePushData(mapOf("psi_v" to "1", "psi_aid" to s, "psi_rid" to rid)) }
                    refused("parsePushData(key)") { core.parsePushData(mapOf(s to "1")) }
                    refused("handlePushData(value)") { core.handlePushData(mapOf("psi_v" to s)) }
                    refused("handlePushData(key)") { core.handlePushData(mapOf(s to "1", "psi_aid" to aid, "psi_rid" to rid)) }
                    refused("fetchRequest(accountId)") { core.fetchRequest(s, rid) }
                    refused("fetchRequest(requestId)") { core.fetchRequest(aid, s) }
                    refused("approve(accountId)") { core.approve(s, rid, phone.number) }
                    refused("approve(requestId)") { core.approve(aid, s, phone.number) }
                    refused("approve(typedNumber)") { core.approve(aid, rid, phone.number + s) }
                    refused("deny(accountId)") { core.deny(s, rid) }
                    refused("deny(requestId)") { core.deny(aid, s) }
                    refused("reportFraud(accountId)") { core.reportFraud(s, rid) }
                    refused("reportFraud(requestId)") { core.reportFraud(aid, s) }
                    refused("addTotpAccount") { core.addTotpAccount(totp + s) }
                    refused("totpCode") { core.totpCode(s) }
                    refused("removeTotpAccount") { core.removeTotpAccount(s) }
                    refused("webPushToken(endpoint)") { webPushToken("https://push.example/$s", P256DH, AUTH) }
                    refused("webPushToken(p256dh)") { webPushToken("https://push.example/a", P256DH + s, AUTH) }
                    refused("webPushToken(auth)") { webPushToken("https://push.example/a", P256DH, s + AUTH) }
                    refused("updatePushRegistration(push token)") {
                        core.updatePushRegistration(PushRegistration(PushKind.FCM, s))
                    }
                    refused("moveIn(link)") { core.moveIn("phonesignin://move?v=1$s", "phone", PhoneSignIn.LONG_POLL) }
                    refused("moveIn(deviceName)") { core.moveIn("phonesignin://move?v=1", s, PhoneSignIn.LONG_POLL) }
                    refused("exportTotpAccounts") { core.exportTotpAccounts("passphrase$s") }
                    refused("importTotpAccounts(file)") { core.importTotpAccounts("{}$s", "passphrase") }
                    refused("importTotpAccounts(passphrase)") { core.importTotpAccounts("{}", s) }
                }
                assertEquals(lone.size * 35, refusals.get())
                assertEquals("pending", server.signInStatus(rid))
                assertEquals(listOf(phone.request), core.pendingRequests())
                assertEquals(Decision.APPROVED, core.approve(aid, rid, phone.number))
                assertStillWorks(core, before)
            }
            report("lone surrogates")
        }
    }

    @Test
    fun theFacadeNamesTheArgumentWithTheLoneSurrogateAndGivesItsKindOfError() {
        runBlocking {
            val high = Char(0xD800).toString()
            assertFailsWith<AuthenticatorException.InvalidInput> { PhoneSignIn(dataDir() + high, JcaKeyStore()) }
            assertFailsWith<AuthenticatorException.InvalidInput> { PhoneSignIn.webPush("https://push.example/$high", P256DH, AUTH) }
            PhoneSignIn(dataDir(), JcaKeyStore(), JcaSecretStore()).use { phone ->
                val (upn, link) = server.newUserLink()
                // A surrogate in the device name is a bad device name, not a bad link.
                val name = assertFailsWith<AuthenticatorException.InvalidInput> { phone.enroll(link, "Bob's ${high}phone") }
                assertTrue(name.reason.startsWith("deviceName "), name.reason)
                val url = assertFailsWith<AuthenticatorException.InvalidEnrollmentUrl> { phone.enroll(link + high, "phone") }
                assertTrue(url.reason.startsWith("enrollmentLink "), url.reason)
                assertFailsWith<AuthenticatorException.InvalidPushPayload> { phone.onPushMessage("{\"v\":1$high}") }
                assertFailsWith<AuthenticatorException.InvalidPushPayload> { phone.onPushData(mapOf("psi_v" to high)) }
                assertFailsWith<AuthenticatorException.InvalidPushPayload> { phone.onPushData(mapOf(high to "1")) }
                assertFailsWith<AuthenticatorException.InvalidTotpUri> { phone.addTotpAccount("otpauth://totp/a$high?secret=GEZDGNBV") }
                // The link itself was not used up: the same link still enrolls.
                val account = phone.enablePhoneSignIn(phone.enroll(link, "Bob's phone").accountId)
                val (id, number) = server.startSignIn(upn, "Contoso Mail")
                val request = phone.waitForRequests(10u).single { it.requestId == id }
                val forged = request.copy(requestId = request.requestId + high)
                assertFailsWith<AuthenticatorException.InvalidInput> { phone.approve(forged, number) }
                assertFailsWith<AuthenticatorException.InvalidInput> { phone.approve(request, number + high) }
                assertFailsWith<AuthenticatorException.InvalidInput> { phone.deny(forged) }
                assertFailsWith<AuthenticatorException.InvalidInput> { phone.reportFraud(request.copy(accountId = high)) }
                assertFailsWith<AuthenticatorException.InvalidInput> { phone.enablePhoneSignIn(account.accountId + high) }
                assertFailsWith<AuthenticatorException.InvalidInput> { phone.removeAccount(high) }
                val totp = phone.totpAccounts().single { it.accountId == account.accountId }
                assertFailsWith<AuthenticatorException.InvalidInput> { phone.totpCode(totp.copy(totpId = high)) }
                assertFailsWith<AuthenticatorException.InvalidInput> { phone.removeTotpAccount(totp.copy(totpId = totp.totpId + high)) }
                assertEquals("pending", server.signInStatus(id))
                assertEquals(Decision.APPROVED, phone.approve(request, number))
                assertEquals(listOf(totp), phone.totpAccounts())
            }
        }
    }

    @Test
    fun everyCallAfterCloseIsTheTypedClosedError() {
        runBlocking {
            val phone = PhoneSignIn(dataDir(), JcaKeyStore(), JcaSecretStore())
            val (_, link) = server.newUserLink()
            val account = phone.enroll(link, "phone")
            val totp = phone.totpAccounts().single()
            phone.close()
            phone.close() // closing twice is harmless
            val request = PendingRequest(
                requestId = "A".repeat(22), accountId = account.accountId, upn = account.upn, serverName = account.serverName,
                kind = org.phonesignin.core.RequestKind.PASSWORDLESS, appName = null, location = null, deviceName = null,
                numberMatching = true, numberLength = 2u, browserOrigin = null, createdAtMs = 0u, expiresAtMs = 0u,
            )
            val calls: List<Pair<String, suspend () -> Any?>> = listOf(
                "accounts" to { phone.accounts() },
                "enroll" to { phone.enroll(link, "phone") },
                "enablePhoneSignIn" to { phone.enablePhoneSignIn(account.accountId) },
                "removeAccount" to { phone.removeAccount(account.accountId) },
                "onPushMessage" to { phone.onPushMessage("{}") },
                "onPushData" to { phone.onPushData(emptyMap()) },
                "waitForRequests" to { phone.waitForRequests(0u) },
                "pendingRequests" to { phone.pendingRequests() },
                "approve" to { phone.approve(request, "42") },
                "deny" to { phone.deny(request) },
                "reportFraud" to { phone.reportFraud(request) },
                "startBrowserListener" to { phone.startBrowserListener(0u) },
                "stopBrowserListener" to { phone.stopBrowserListener() },
                "totpAccounts" to { phone.totpAccounts() },
                "addTotpAccount" to { phone.addTotpAccount("otpauth://totp/a?secret=GEZDGNBVGY3TQOJQ") },
                "totpCode" to { phone.totpCode(totp) },
                "removeTotpAccount" to { phone.removeTotpAccount(totp) },
                "core.parsePushJson" to { phone.core.parsePushJson("{}") },
                "core.parsePushData" to { phone.core.parsePushData(emptyMap()) },
                "core.fetchRequest" to { phone.core.fetchRequest(account.accountId, request.requestId) },
                "core.cancelPoll" to { phone.core.cancelPoll() },
            )
            for ((what, call) in calls) {
                try {
                    call()
                    fail("$what answered after close()")
                } catch (e: AuthenticatorException.Closed) {
                    // the typed error, as the generated bindings raise it
                } catch (e: Throwable) {
                    throw AssertionError("$what after close() threw ${e::class.qualifiedName}, not AuthenticatorException.Closed", e)
                }
            }
        }
    }

    @Test
    fun pushOutcomesPrintAsWhatHappened() {
        assertEquals("Expired", PushOutcome.Expired.toString())
        assertEquals("AlreadyAnswered", PushOutcome.AlreadyAnswered.toString())
        assertEquals("UnknownAccount", PushOutcome.UnknownAccount.toString())
        runBlocking {
            Authenticator(dataDir(), JcaKeyStore()).use { core ->
                val outcome = core.handlePushJson("""{"v":1,"aid":"${"A".repeat(22)}","rid":"${"B".repeat(21)}A"}""")
                assertEquals(PushOutcome.UnknownAccount, outcome)
                assertEquals("UnknownAccount", "$outcome")
            }
        }
    }

    @Test
    fun concurrentHostileCallsFromManyCoroutinesAreAllTypedAndTheCoreKeepsWorking() {
        runBlocking {
            val phone = enrolledWithPendingRequest()
            phone.core.use { core ->
                val before = core.accounts()
                val aid = phone.account.accountId
                val rid = phone.request.requestId
                val inputs = HOSTILE_TEXT + idVariants(aid) + idVariants(rid)
                val results = (0 until 400).map { i ->
                    async(Dispatchers.Default) {
                        val h = inputs[i % inputs.size]
                        when (i % 10) {
                            0 -> hostile("parsePushJson") { core.parsePushJson(h) }
                            1 -> hostile("handlePushJson") { core.handlePushJson("""{"v":1,"aid":"$aid","rid":"$h"}""") }
                            2 -> hostile("parsePushData") { core.parsePushData(mapOf("psi_v" to h, "psi_aid" to aid, "psi_rid" to rid)) }
                            3 -> hostile("handlePushData") { core.handlePushData(mapOf("psi_v" to "1", "psi_aid" to h, "psi_rid" to rid)) }
                            4 -> hostile("approve") { core.approve(aid, rid, h.take(64) + "x") }
                            5 -> hostile("deny") { core.deny(h, rid) }
                            6 -> hostile("reportFraud") { core.reportFraud(aid, h) }
                            7 -> hostile("fetchRequest") { core.fetchRequest(aid, h) }
                            8 -> hostile("enablePhoneSignIn / removeAccount") {
                                if (i % 20 == 8) core.enablePhoneSignIn(h) else core.removeAccount(h)
                            }
                            else -> hostile("accounts / pendingRequests / poll(0) / cancelPoll") {
                                when (i % 40) {
                                    9 -> core.accounts()
                                    19 -> core.pendingRequests()
                                    29 -> core.poll(0u)
                                    else -> core.cancelPoll()
                                }
                            }
                        }
                    }
                }.awaitAll()
                assertEquals(400, results.size)
                assertEquals("pending", server.signInStatus(rid))
                assertEquals(listOf(phone.request), core.pendingRequests())
                assertStillWorks(core, before)
            }
            report("concurrent")
        }
    }

    private fun assertWellFormedIds(target: PushTarget, what: String) {
        for (id in listOf(target.accountId, target.requestId)) {
            assertTrue(id.length == 22 && id.all { it.isLetterOrDigit() && it.code < 128 || it == '-' || it == '_' }, "$what gave $id")
        }
    }

    /** Hostile calls made by the running test. */
    private val callsHere = AtomicInteger()

    private fun report(what: String) {
        println("HostileInputTest ($what): ${callsHere.get()} hostile calls, 0 panics")
    }

    companion object {
        private const val MIB = 1 shl 20

        /** A Web Push subscription's public key (P-256, uncompressed, base64url) and auth secret. */
        const val P256DH = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
        const val AUTH = "BTBZMqHH6r4Tts7J_aSIgg"

        /** A well-formed browser challenge (16 bytes, base64url). */
        private const val CHALLENGE = "AAECAwQFBgcICQoLDA0ODw"

        private fun listenerUrl(port: UShort) = "http://127.0.0.1:$port/v1/browser-binding"

        /** Every hostile call made by this class (for the report). */
        private val calls = AtomicInteger()

        /** How the hostile calls ended: "returned" or the error's class name. */
        private val outcomes = ConcurrentHashMap<String, Int>()

        /** Hostile text for any string parameter. */
        val HOSTILE_TEXT: List<String> = listOf(
            "", " ", "\t\n\r\u000B\u000C ", "\u00A0\u2028\u2029\u3000\u0085",
            "\u0000", "a\u0000b", "\u0000".repeat(1024),
            "A".repeat(MIB), "€".repeat(MIB / 3), "\uD83D\uDE00".repeat(MIB / 4),
            "\u0001\u0007\b\u001B[31mred\u001B[0m\u007F\u009B", "line1\nline2\r\nline3",
            "\u202Eevil\u202Cgood", "\u2066\u2067\u2068\u2069\u200E\u200F\u061C", "\u200B\u200C\u200D\u2060\uFEFF",
            "e" + "\u0301".repeat(10_000), "👨‍👩‍👧‍👦🏳️‍🌈🇺🇳", "\uDBFF\uDFFF", "\uFFFF\uFFFE\uFFFD",
            "'; DROP TABLE accounts; --", "\" OR \"1\"=\"1", "1; DELETE FROM requests; --", "%' OR 1=1 --",
            "../../etc/passwd", "..\\..\\windows\\system32\\config", "/etc/passwd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
            "javascript:alert(1)", "file:///etc/passwd", "data:text/html,<script>alert(1)</script>", "http://evil.test/",
            "phonesignin://enroll", "<script>alert(1)</script>", "%s%s%s%n", "\${jndi:ldap://evil.test/a}", "{{7*7}}",
            "null", "undefined", "true", "[]", "{}", "NaN", "-0",
            "4", "999", "-1", "٤٢", "42\n", "４２", "0x2A", "+42", "4\u00002", "1e2", "9".repeat(400), "18446744073709551616",
        )

        /** What a user might type (or an app pass) instead of two digits. */
        val HOSTILE_NUMBERS: List<String> = listOf(
            "", " ", "\n", "4", "999", "-1", "-01", "٤٢", "۴۲", "４２", "४२", "①②", "²³", "0x2A", "+4", "+42", "4 2",
            "4\u00002", "42\u0000", "\u000042", "\u0000", "4.2", "4e1", "42a", "a42", "\u200B42", "42\u200B",
            "4".repeat(MIB), "'; DROP TABLE accounts; --", "../../etc/passwd", "NaN", "null",
        )

        /** Ids of the wrong length or alphabet derived from a real one (never equal to it, even trimmed). */
        fun idVariants(real: String): List<String> = listOf(
            real.dropLast(1), real + "A", real.dropLast(1) + "=", "$real==", "+" + real.drop(1), "/" + real.drop(1),
            "." + real.drop(1), real.dropLast(1) + "B", real.substring(0, 11) + "\u200B" + real.substring(11),
            real + "\u0000", "\u0000" + real, real.lowercase(), real.uppercase(), real.reversed(),
            "A".repeat(22), "_".repeat(22), "-".repeat(21) + "w", "../$real", "$real/../../etc/passwd",
            real.repeat(1000), real.map { if (it in 'A'..'Z') it + 0xFEE0 else it }.joinToString(""),
        ).filter { it.trim() != real }

        /** A short, printable description of a possibly huge or unprintable input. */
        fun show(s: String): String {
            val head = s.take(40).map { c -> if (c.code < 32 || c.code in 0x7F..0x9F) "\\u%04x".format(c.code) else c.toString() }.joinToString("")
            return if (s.length > 40) "\"$head…\" (${s.length} chars)" else "\"$head\""
        }

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
            println("HostileInputTest: ${calls.get()} hostile calls in all, 0 panics: ${outcomes.toSortedMap()}")
        }
    }
}
