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

    struct Failure: Error, CustomStringConvertible { let description: String }

    private init(binary: String, database: String, process: Process, baseURL: String) {
        self.binary = binary
        self.database = database
        self.process = process
        self.baseURL = baseURL
    }

    deinit { process.terminate() }

    static func start() throws -> SigninServer {
        guard let binary = ProcessInfo.processInfo.environment["SIGNIN_SERVER"] else {
            throw Failure(description: "run through `cargo xtask swift-test` (SIGNIN_SERVER is not set)")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("signin-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let database = "sqlite://\(dir.appendingPathComponent("signin.db").path)"
        _ = try admin(binary, database, [
            "policy", "set", "--enabled", "true", "--target", "all", "--mode", "any",
            "--number-matching", "on", "--show-app-name", "on", "--show-location", "on",
        ])
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["--database", database, "serve", "--listen", "127.0.0.1:0"]
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

    private static func admin(_ binary: String, _ database: String, _ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = ["--database", database, "admin"] + args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard p.terminationStatus == 0 else { throw Failure(description: "admin \(args): \(text)") }
        return text
    }

    /// Adds a fresh user; returns its UPN and a one-time registration link.
    func newUser() throws -> (upn: String, link: String) {
        let upn = "swift-\(UUID().uuidString.prefix(8).lowercased())@contoso.test"
        _ = try Self.admin(binary, database, ["user", "add", "--upn", upn, "--name", "Swift User"])
        let link = try Self.admin(binary, database, ["registration-link", "--upn", upn, "--server-url", baseURL + "/"])
        return (upn, link.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// `POST /api/v1/signin`, as the sign-in page does.
    func startSignIn(upn: String, app: String) async throws -> (id: String, number: String) {
        var req = URLRequest(url: URL(string: baseURL + "/api/v1/signin")!)
        req.httpMethod = "POST"
        req.setValue("application/json", forHTTPHeaderField: "content-type")
        req.httpBody = try JSONSerialization.data(withJSONObject: ["upn": upn, "app": app])
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
}
