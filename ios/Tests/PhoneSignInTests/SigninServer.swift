import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A real `signin-server` process on 127.0.0.1 with its own SQLite file, administered through its
/// admin CLI. The binary comes from `SIGNIN_SERVER` (set by `cargo xtask swift-test`).
final class SigninServer: @unchecked Sendable {
    let baseURL: String
    private let binary: String
    private let database: String
    private let process: Process
    /// Registered applications by name: their `Authorization` header values (HTTP Basic).
    private var applications: [String: String] = [:]
    private let applicationsLock = NSLock()

    struct Failure: Error, CustomStringConvertible { let description: String }

    private init(binary: String, database: String, process: Process, baseURL: String) {
        self.binary = binary
        self.database = database
        self.process = process
        self.baseURL = baseURL
    }

    deinit { process.terminate() }

    /// Stops the server now. SIGKILL: on Linux the child of Foundation's `Process` inherits a
    /// signal mask that blocks SIGTERM (`SigBlk` in /proc), so `terminate()` leaves it running;
    /// its database is thrown away anyway.
    func close() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// With `browserListenerPort`: the phishing-resistant policy (PROTOCOL.md §5.9), the sign-in
    /// pages pointing their script at an Authenticator listening on that port. Such sign-ins are
    /// bound to the origin of the server's public URL, so the server then listens on a free port
    /// picked here and is told that URL.
    static func start(browserListenerPort: UInt16? = nil) throws -> SigninServer {
        guard let binary = ProcessInfo.processInfo.environment["SIGNIN_SERVER"] else {
            throw Failure(description: "run through `cargo xtask swift-test` (SIGNIN_SERVER is not set)")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("signin-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let database = "sqlite://\(dir.appendingPathComponent("signin.db").path)"
        var policy = [
            "policy", "set", "--enabled", "true", "--target", "all", "--mode", "any",
            "--number-matching", "on", "--show-app-name", "on", "--show-location", "on",
        ]
        var serve = ["--database", database, "serve", "--listen", "127.0.0.1:0"]
        if let browserListenerPort {
            policy += ["--phishing-resistant", "on"]
            let port = try LoopbackSocket().port // closed again at once: free for the server
            serve[serve.count - 1] = "127.0.0.1:\(port)"
            serve += ["--public-url", "http://127.0.0.1:\(port)/", "--browser-listener-port", "\(browserListenerPort)"]
        }
        _ = try admin(binary, database, policy)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = serve
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        var text = ""
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
            if let line = text.split(separator: "\n").first(where: { $0.contains("signin-server listening on ") }) {
                let url = line.components(separatedBy: "signin-server listening on ")[1]
                return SigninServer(binary: binary, database: database, process: process, baseURL: url.trimmingCharacters(in: CharacterSet(charactersIn: "/ \r")))
            }
        }
        process.terminate()
        throw Failure(description: "signin-server did not start: \(text)")
    }

    private static func admin(_ binary: String, _ database: String, _ args: [String], input: String? = nil) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = ["--database", database, "admin"] + args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        let stdin = Pipe()
        p.standardInput = stdin
        try p.run()
        if let input { stdin.fileHandleForWriting.write(Data((input + "\n").utf8)) }
        try stdin.fileHandleForWriting.close()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard p.terminationStatus == 0 else { throw Failure(description: "admin \(args): \(text)") }
        return text
    }

    /// Adds a fresh user (with a password for the sign-in page when given); returns its UPN and
    /// a one-time registration link.
    /// `admin user show`: the user's devices and their push channels, as an admin sees them.
    func userShow(upn: String) throws -> String {
        try Self.admin(binary, database, ["user", "show", "--upn", upn])
    }

    func newUser(password: String? = nil) throws -> (upn: String, link: String) {
        let upn = "swift-\(UUID().uuidString.prefix(8).lowercased())@contoso.test"
        var add = ["user", "add", "--upn", upn, "--name", "Swift User"]
        if password != nil { add.append("--password-stdin") }
        _ = try Self.admin(binary, database, add, input: password)
        let link = try Self.admin(binary, database, ["registration-link", "--upn", upn, "--server-url", baseURL + "/"])
        return (upn, link.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// The `Authorization` header of the registered application `name`, registered with
    /// `admin app add` on first use (it prints `client_id: …` and `client_secret: …`).
    private func application(_ name: String) throws -> String {
        try applicationsLock.withLock {
            if let known = applications[name] { return known }
            let out = try Self.admin(binary, database, ["app", "add", "--name", name])
            func field(_ key: String) throws -> String {
                guard let line = out.split(separator: "\n").first(where: { $0.hasPrefix("\(key): ") }) else {
                    throw Failure(description: "no \(key) in `admin app add` output: \(out)")
                }
                return line.dropFirst(key.count + 2).trimmingCharacters(in: .whitespaces)
            }
            let credential = "Basic " + Data("\(try field("client_id")):\(try field("client_secret"))".utf8).base64EncodedString()
            applications[name] = credential
            return credential
        }
    }

    /// `POST /api/v1/signin` as the registered application `app` (the phone shows its registered
    /// name): a phone sign-in.
    func startSignIn(upn: String, app: String) async throws -> (id: String, number: String) {
        var req = URLRequest(url: URL(string: baseURL + "/api/v1/signin")!)
        req.httpMethod = "POST"
        req.setValue("application/json", forHTTPHeaderField: "content-type")
        req.setValue(try application(app), forHTTPHeaderField: "authorization")
        req.httpBody = try JSONSerialization.data(withJSONObject: ["upn": upn])
        let json = try await send(req)
        guard let id = json["id"] as? String, let number = json["number"] as? String else {
            throw Failure(description: "bad sign-in answer \(json)")
        }
        return (id, number)
    }

    /// `GET /api/v1/signin/{id}` → status.
    func signInStatus(_ id: String) async throws -> String {
        let json = try await send(URLRequest(url: URL(string: baseURL + "/api/v1/signin/\(id)")!))
        return json["status"] as? String ?? "?"
    }

    private func send(_ request: URLRequest) async throws -> [String: Any] {
        let data: Data = try await withCheckedThrowingContinuation { cont in
            URLSession.shared.dataTask(with: request) { data, response, error in
                if let error { return cont.resume(throwing: error) }
                guard let http = response as? HTTPURLResponse, http.statusCode == 200, let data else {
                    return cont.resume(throwing: Failure(description: "HTTP \(String(describing: response)) \(String(decoding: data ?? Data(), as: UTF8.self))"))
                }
                cont.resume(returning: data)
            }.resume()
        }
        return (try JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
    }

    /// Password + push on the sign-in pages, as a browser does (for a user whose phone has no
    /// phone sign-in): the UPN, then the password, then the server sends a second-factor
    /// request to the phone and the wait page shows the number. Returns the request id and
    /// the number.
    func startPushSignIn(upn: String, password: String) async throws -> (id: String, number: String) {
        let browser = PageBrowser(baseURL: baseURL)
        var page = try await browser.get("/signin")
        var (status, location) = try await browser.post("/signin", ["csrf": try page.between("name=\"csrf\" value=\"", "\"", in: "/signin"), "upn": upn])
        guard status == 303, location == "/signin/password" else {
            throw Failure(description: "POST /signin: \(status) → \(location ?? "-") (expected the password page)")
        }
        page = try await browser.get("/signin/password")
        (status, location) = try await browser.post("/signin/password", ["csrf": try page.between("name=\"csrf\" value=\"", "\"", in: "/signin/password"), "password": password])
        guard status == 303, location == "/signin/wait" else {
            throw Failure(description: "POST /signin/password: \(status) → \(location ?? "-") (expected the wait page)")
        }
        page = try await browser.get("/signin/wait")
        let id = try page.between("data-request-id=\"", "\"", in: "/signin/wait")
        let number = try page.between("Number to enter: ", "\"", in: "/signin/wait")
        return (id, number)
    }
}

/// One browser on the sign-in pages: keeps the session cookie itself and follows no redirect,
/// so each step's `303 See Other` (and the cookie it sets) is seen as the page answers it.
final class PageBrowser: @unchecked Sendable {
    private let baseURL: String
    private var cookie: String?

    init(baseURL: String) { self.baseURL = baseURL }

    func get(_ path: String) async throws -> String {
        let (response, data) = try await exchange(path, method: "GET", body: nil)
        guard response.statusCode == 200 else {
            throw SigninServer.Failure(description: "GET \(path): HTTP \(response.statusCode)")
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// A form post; returns the status and the `Location` header.
    func post(_ path: String, _ form: [String: String]) async throws -> (status: Int, location: String?) {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        let body = form.map { key, value in
            "\(key)=\(value.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")"
        }.joined(separator: "&")
        let (response, _) = try await exchange(path, method: "POST", body: Data(body.utf8))
        return (response.statusCode, response.value(forHTTPHeaderField: "Location"))
    }

    private func exchange(_ path: String, method: String, body: Data?) async throws -> (HTTPURLResponse, Data) {
        var request = URLRequest(url: URL(string: baseURL + path)!)
        request.httpMethod = method
        request.httpShouldHandleCookies = false
        if let cookie { request.setValue(cookie, forHTTPHeaderField: "Cookie") }
        if let body {
            request.setValue("application/x-www-form-urlencoded", forHTTPHeaderField: "Content-Type")
            request.httpBody = body
        }
        let (response, data) = try await NoRedirectExchange.run(request)
        if let setCookie = response.value(forHTTPHeaderField: "Set-Cookie"),
           let pair = setCookie.split(separator: ";").first {
            cookie = pair.trimmingCharacters(in: .whitespaces)
        }
        return (response, data)
    }
}

/// One HTTP exchange through a session delegate that refuses redirects.
private final class NoRedirectExchange: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    private var body = Data()
    private var continuation: CheckedContinuation<(HTTPURLResponse, Data), Error>?

    static func run(_ request: URLRequest) async throws -> (HTTPURLResponse, Data) {
        let exchange = NoRedirectExchange()
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpCookieAcceptPolicy = .never
        configuration.httpShouldSetCookies = false
        let session = URLSession(configuration: configuration, delegate: exchange, delegateQueue: nil)
        defer { session.finishTasksAndInvalidate() }
        return try await withCheckedThrowingContinuation { continuation in
            exchange.continuation = continuation
            session.dataTask(with: request).resume()
        }
    }

    func urlSession(
        _ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
        newRequest request: URLRequest, completionHandler: @escaping (URLRequest?) -> Void
    ) {
        completionHandler(nil)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        body.append(data)
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        let continuation = self.continuation
        self.continuation = nil
        if let error {
            continuation?.resume(throwing: error)
        } else if let response = task.response as? HTTPURLResponse {
            continuation?.resume(returning: (response, body))
        } else {
            continuation?.resume(throwing: SigninServer.Failure(description: "no HTTP response"))
        }
    }
}

extension String {
    /// The text between the first `start` and the next `end`.
    func between(_ start: String, _ end: String, in page: String) throws -> String {
        guard let from = range(of: start)?.upperBound,
              let to = self[from...].range(of: end)?.lowerBound
        else { throw SigninServer.Failure(description: "\(page): no \(start)…\(end) in \(self)") }
        return String(self[from..<to])
    }
}
