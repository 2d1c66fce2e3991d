package org.phonesignin.android

import java.net.URI
import java.net.URLEncoder
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.nio.file.Files
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertNull
import kotlin.test.assertTrue
import kotlinx.coroutines.runBlocking
import org.junit.Test
import org.phonesignin.core.AccountSummary
import org.phonesignin.core.AuthenticatorException
import org.phonesignin.core.Decision
import org.phonesignin.core.PendingRequest

/**
 * The phishing-resistant sign-in (PROTOCOL.md §5.9) through the facade, against a real
 * signin-server with the policy on. The test is the browser: it starts the sign-in on the
 * server's own pages (keeping the session cookie), reads the number and the challenge off the
 * wait page, and then does what the page's script does — posts the challenge to the app's
 * listener — with the `Origin` header a browser would write: the server's own origin for the
 * real page, another one for a page relayed by a phishing proxy.
 */
class BrowserBindingTest {
    /**
     * A phone whose listener runs on a free port, a phishing-resistant server whose pages point
     * their script at that port, and a fresh user enrolled on the phone with phone sign-in.
     */
    private class Setup(
        val phone: PhoneSignIn,
        val keys: JcaKeyStore,
        val port: UShort,
        val server: SigninServer,
        val upn: String,
        val account: AccountSummary,
    ) : AutoCloseable {
        /** The serialized origin of the server's pages (its public URL), as a browser sends it. */
        val origin: String get() = server.baseUrl

        override fun close() {
            runBlocking { phone.stopBrowserListener() }
            phone.close()
            server.close()
        }
    }

    private suspend fun setup(): Setup {
        val keys = JcaKeyStore()
        val phone = PhoneSignIn(Files.createTempDirectory("phone-browser").toString(), keys)
        val port = phone.startBrowserListener(0u)
        assertTrue(port > 0u, "the listener names the port it bound")
        val server = SigninServer.start(browserListenerPort = port)
        val (upn, link) = server.newUserLink()
        val account = phone.enablePhoneSignIn(phone.enroll(link, "Kotlin browser-binding phone").accountId)
        return Setup(phone, keys, port, server, upn, account)
    }

    /** What the wait page of a sign-in shows, and where its script posts the challenge. */
    private class WaitPage(val requestId: String, val number: String, val challenge: String, val listener: String)

    /** GET /signin, POST /signin (CSRF field + UPN), GET /signin/wait, as one browser session. */
    private fun signInOnThePages(s: Setup): WaitPage {
        val browser = PageBrowser(s.server.baseUrl)
        val form = browser.get("/signin")
        assertEquals(200, form.statusCode())
        val csrf = between(form.body(), "name=\"csrf\" value=\"", "\"")
        val started = browser.post("/signin", mapOf("csrf" to csrf, "upn" to s.upn))
        assertEquals(303, started.statusCode(), started.body())
        assertEquals("/signin/wait", started.headers().firstValue("location").orElse(null))
        val wait = browser.get("/signin/wait")
        assertEquals(200, wait.statusCode())
        val page = wait.body()
        return WaitPage(
            requestId = between(page, "data-request-id=\"", "\""),
            number = between(page, "aria-label=\"Number to enter: ", "\""),
            challenge = between(page, "data-browser-challenge=\"", "\""),
            listener = between(page, "data-browser-listener=\"", "\""),
        )
    }

    /** The wait page's sign-in reaches the phone; it is browser-bound to the server's origin. */
    private suspend fun reachesThePhone(s: Setup, page: WaitPage): PendingRequest {
        val request = s.phone.waitForRequests(10u).single { it.requestId == page.requestId }
        assertEquals(s.account.accountId, request.accountId)
        assertEquals(s.origin, request.browserOrigin, "the UI can tell this request needs the page on this device")
        return request
    }

    @Test
    fun thePageSeenAtTheServersOriginIsApproved() = runBlocking {
        setup().use { s ->
            val page = signInOnThePages(s)
            // The server points the page's script at the port it was told, which is the app's.
            assertEquals("http://127.0.0.1:${s.port}/v1/browser-binding", page.listener)
            val request = reachesThePhone(s, page)

            val seen = announce(page.listener, page.challenge, origin = s.origin)
            assertEquals(204, seen.statusCode())
            // What lets the page (and only it) read "seen": CORS for exactly its origin.
            assertEquals(s.origin, seen.headers().firstValue("access-control-allow-origin").orElse(null))

            s.keys.requests.clear()
            assertEquals(Decision.APPROVED, s.phone.approve(request, page.number))
            assertEquals("approved", s.server.signInStatus(page.requestId))
            assertTrue(s.keys.requests.single().prompt != null, "one approval, after user verification")
        }
    }

    @Test
    fun aPageRelayedFromAnotherOriginIsRefusedNamingBothOriginsAndCanBeReported() = runBlocking {
        setup().use { s ->
            val page = signInOnThePages(s)
            val request = reachesThePhone(s, page)
            // The phishing proxy relays the page, script and challenge included; the victim's
            // browser still writes the proxy's origin.
            val relay = "http://localhost:1"
            assertEquals(204, announce(page.listener, page.challenge, origin = relay).statusCode())

            s.keys.requests.clear()
            val refused = assertFailsWith<AuthenticatorException.BrowserOriginMismatch> {
                s.phone.approve(request, page.number)
            }
            assertEquals(relay, refused.seenOrigin)
            assertEquals(s.origin, refused.expectedOrigin)
            assertTrue(s.keys.requests.isEmpty(), "refused before user verification, nothing signed: ${s.keys.requests}")
            assertEquals("pending", s.server.signInStatus(page.requestId))
            // What the app offers next: "this wasn't me".
            assertEquals(Decision.REPORTED, s.phone.reportFraud(request))
            assertEquals("reported", s.server.signInStatus(page.requestId))
        }
    }

    @Test
    fun aPageNotSeenOnThisDeviceIsRefusedUntilItAnnouncesItself() = runBlocking {
        setup().use { s ->
            val page = signInOnThePages(s)
            val request = reachesThePhone(s, page)
            // Something that is not a page (no Origin) is refused and records nothing.
            val noOrigin = announce(page.listener, page.challenge, origin = null)
            assertEquals(403, noOrigin.statusCode())
            assertNull(noOrigin.headers().firstValue("access-control-allow-origin").orElse(null))

            s.keys.requests.clear()
            assertFailsWith<AuthenticatorException.BrowserNotSeen> { s.phone.approve(request, page.number) }
            assertTrue(s.keys.requests.isEmpty(), "refused before user verification, nothing signed: ${s.keys.requests}")
            assertEquals("pending", s.server.signInStatus(page.requestId))

            // "Open the sign-in page on this device": once it is seen, the same request approves.
            assertEquals(204, announce(page.listener, page.challenge, origin = s.origin).statusCode())
            assertEquals(Decision.APPROVED, s.phone.approve(request, page.number))
            assertEquals("approved", s.server.signInStatus(page.requestId))
        }
    }

    companion object {
        /** Like a browser's `fetch`: HTTP/1.1, no redirects followed. */
        private val http: HttpClient = HttpClient.newBuilder()
            .version(HttpClient.Version.HTTP_1_1)
            .followRedirects(HttpClient.Redirect.NEVER)
            .build()

        /**
         * What the wait page's script sends: the challenge as `text/plain` to the listener, and
         * the `Origin` a browser adds ([origin] null: a client that is not a browser page).
         */
        fun announce(listener: String, challenge: String, origin: String?): HttpResponse<String> =
            call(listener, "POST", challenge, origin)

        /** Any request to the listener at [url] ([body] null: none). */
        fun call(url: String, method: String, body: String?, origin: String?): HttpResponse<String> {
            val request = HttpRequest.newBuilder(URI.create(url))
                .method(method, body?.let { HttpRequest.BodyPublishers.ofString(it) } ?: HttpRequest.BodyPublishers.noBody())
            if (body != null) request.header("content-type", "text/plain;charset=UTF-8")
            if (origin != null) request.header("origin", origin)
            return http.send(request.build(), HttpResponse.BodyHandlers.ofString())
        }

        /** The text between the first [start] and the next [end]. */
        fun between(text: String, start: String, end: String): String {
            val from = text.indexOf(start).also { check(it >= 0) { "no $start in $text" } } + start.length
            val to = text.indexOf(end, from).also { check(it >= 0) { "no $end after $start in $text" } }
            return text.substring(from, to)
        }
    }

    /** One browser session on the sign-in pages: keeps the session cookie, follows no redirect. */
    private class PageBrowser(private val baseUrl: String) {
        private var cookie: String? = null

        fun get(path: String): HttpResponse<String> = send(HttpRequest.newBuilder(URI.create(baseUrl + path)).GET())

        fun post(path: String, form: Map<String, String>): HttpResponse<String> {
            val body = form.entries.joinToString("&") { (k, v) -> "$k=${URLEncoder.encode(v, Charsets.UTF_8)}" }
            return send(
                HttpRequest.newBuilder(URI.create(baseUrl + path))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .POST(HttpRequest.BodyPublishers.ofString(body)),
            )
        }

        private fun send(request: HttpRequest.Builder): HttpResponse<String> {
            cookie?.let { request.header("cookie", it) }
            val response = http.send(request.build(), HttpResponse.BodyHandlers.ofString())
            response.headers().firstValue("set-cookie").ifPresent { cookie = it.substringBefore(';') }
            return response
        }
    }
}
