package org.phonesignin.android

import java.io.File
import java.net.InetAddress
import java.net.ServerSocket
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.nio.file.Files
import java.util.Base64
import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicInteger

/**
 * A real `signin-server` process on 127.0.0.1 with its own SQLite file, administered through
 * its admin CLI. The binary comes from `-Dsignin.server=...` (set by `cargo xtask kotlin-test`).
 */
class SigninServer private constructor(
    private val binary: String,
    private val database: String,
    private val process: Process,
    val baseUrl: String,
) : AutoCloseable {
    private val http = HttpClient.newHttpClient()
    private val users = AtomicInteger()

    /** Registered applications by name: "Authorization" header values (HTTP Basic). */
    private val applications = ConcurrentHashMap<String, String>()

    /** Adds a fresh user and returns a one-time registration link for it. */
    fun newUserLink(): Pair<String, String> {
        val upn = "user${users.incrementAndGet()}-${System.nanoTime()}@contoso.test"
        admin("user", "add", "--upn", upn, "--name", "Test User")
        return upn to admin("registration-link", "--upn", upn, "--server-url", "$baseUrl/").trim()
    }

    fun admin(vararg args: String): String = runAdmin(binary, database, *args)

    /**
     * `POST /api/v1/signin` as the registered application [app] (registered with `admin app add`
     * on first use): the phone shows the registered name. Returns (id, number).
     */
    fun startSignIn(upn: String, app: String): Pair<String, String> {
        val credential = applications.computeIfAbsent(app) { name ->
            val out = admin("app", "add", "--name", name)
            val field = { key: String ->
                out.lines().firstOrNull { it.startsWith("$key: ") }?.substringAfter(": ")?.trim()
                    ?: error("no $key in `admin app add` output")
            }
            val pair = "${field("client_id")}:${field("client_secret")}"
            "Basic " + Base64.getEncoder().encodeToString(pair.toByteArray())
        }
        val body = post("/api/v1/signin", """{"upn": "$upn"}""", credential)
        return jsonString(body, "id") to jsonString(body, "number")
    }

    /** `GET /api/v1/signin/{id}` → status. */
    fun signInStatus(id: String): String {
        val resp = http.send(
            HttpRequest.newBuilder(URI.create("$baseUrl/api/v1/signin/$id")).GET().build(),
            HttpResponse.BodyHandlers.ofString(),
        )
        check(resp.statusCode() == 200) { "GET signin status: ${resp.statusCode()} ${resp.body()}" }
        return jsonString(resp.body(), "status")
    }

    private fun post(path: String, json: String, authorization: String): String {
        val resp = http.send(
            HttpRequest.newBuilder(URI.create("$baseUrl$path"))
                .header("content-type", "application/json")
                .header("authorization", authorization)
                .POST(HttpRequest.BodyPublishers.ofString(json))
                .build(),
            HttpResponse.BodyHandlers.ofString(),
        )
        check(resp.statusCode() == 200) { "POST $path: ${resp.statusCode()} ${resp.body()}" }
        return resp.body()
    }

    override fun close() {
        process.destroy()
        if (!process.waitFor(5, TimeUnit.SECONDS)) process.destroyForcibly()
    }

    companion object {
        /**
         * With [browserListenerPort]: the phishing-resistant policy (PROTOCOL.md §5.9), the
         * sign-in pages pointing their script at an Authenticator listening on that port. Such
         * sign-ins are bound to the origin of the server's public URL, so the server then listens
         * on a free port picked here and is told that URL.
         */
        fun start(browserListenerPort: UShort? = null): SigninServer {
            val binary = System.getProperty("signin.server")
                ?: error("run through `cargo xtask kotlin-test` (system property signin.server is not set)")
            val dir = Files.createTempDirectory("signin-server").toFile()
            val database = "sqlite://${File(dir, "signin.db").absolutePath}"
            val policy = mutableListOf(
                "policy", "set", "--enabled", "true", "--target", "all", "--mode", "any",
                "--number-matching", "on", "--show-app-name", "on", "--show-location", "on",
            )
            val serve = mutableListOf(binary, "--database", database, "serve", "--listen", "127.0.0.1:0")
            if (browserListenerPort != null) {
                policy += listOf("--phishing-resistant", "on")
                val port = ServerSocket(0, 1, InetAddress.getLoopbackAddress()).use { it.localPort }
                serve[serve.size - 1] = "127.0.0.1:$port"
                serve += listOf("--public-url", "http://127.0.0.1:$port/", "--browser-listener-port", "$browserListenerPort")
            }
            runAdmin(binary, database, *policy.toTypedArray())
            val process = ProcessBuilder(serve)
                .redirectError(File(dir, "server.log"))
                .start()
            val reader = process.inputStream.bufferedReader()
            val deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30)
            while (System.nanoTime() < deadline) {
                val line = reader.readLine() ?: break
                val url = line.substringAfter("signin-server listening on ", "")
                if (url.isNotEmpty()) return SigninServer(binary, database, process, url.trimEnd('/'))
            }
            process.destroyForcibly()
            error("signin-server did not start; see ${File(dir, "server.log")}")
        }

        private fun runAdmin(binary: String, database: String, vararg args: String): String {
            val p = ProcessBuilder(binary, "--database", database, "admin", *args).redirectErrorStream(true).start()
            val out = p.inputStream.bufferedReader().readText()
            check(p.waitFor() == 0) { "signin-server admin ${args.joinToString(" ")} failed: $out" }
            return out
        }

        /** The value of a string field in a flat JSON object (enough for these responses). */
        fun jsonString(json: String, field: String): String =
            Regex("\"$field\"\\s*:\\s*\"([^\"]*)\"").find(json)?.groupValues?.get(1)
                ?: error("no \"$field\" in $json")
    }
}
