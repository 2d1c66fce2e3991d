import AuthenticatorCore
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Testing
@testable import PhoneSignIn

// The phishing-resistant sign-in (PROTOCOL.md §5.9) through the facade, against a real
// signin-server with the policy on. The test is the browser: it starts the sign-in on the
// server's own pages (keeping the session cookie), reads the number and the challenge off the
// wait page, and then does what the page's script does — posts the challenge to the app's
// listener — with the `Origin` header a browser would write: the server's own origin for the
// real page, another one for a page relayed by a phishing proxy.

/// A phone whose listener runs on a free port, a phishing-resistant server whose pages point
/// their script at that port, and a fresh user enrolled on the phone with phone sign-in.
struct BoundPhone {
    let app: PhoneSignIn
    let keys: EnclaveFormatKeyStore
    let port: UInt16
    let server: SigninServer
    let upn: String
    let account: AccountSummary
    /// The serialized origin of the server's pages (its public URL), as a browser sends it.
    var origin: String { server.baseURL }

    func close() {
        // Stopping is async now; the listener also ends when the last reference to `app` goes.
        let app = self.app
        Task { await app.stopBrowserListener() }
        server.close()
    }

    static func make() async throws -> BoundPhone {
        let keys = EnclaveFormatKeyStore()
        let app = try PhoneSignIn(dataDirectory: tempDirectory(), keyStore: keys)
        let port = try await app.startBrowserListener(port: 0)
        #expect(port > 0, "the listener names the port it bound")
        let server = try SigninServer.start(browserListenerPort: port)
        let (upn, link) = try server.newUser()
        let enrolled = try await app.enroll(link: link, deviceName: "Swift browser-binding phone")
        let account = try await app.enablePhoneSignIn(accountId: enrolled.accountId)
        return BoundPhone(app: app, keys: keys, port: port, server: server, upn: upn, account: account)
    }
}

/// What the wait page of a sign-in shows, and where its script posts the challenge.
struct WaitPage {
    let requestId: String
    let number: String
    let challenge: String
    let listener: String
}

/// GET /signin, POST /signin (CSRF field + UPN), GET /signin/wait, as one browser session.
func signInOnThePages(_ s: BoundPhone) async throws -> WaitPage {
    let browser = PageBrowser(baseURL: s.server.baseURL)
    let form = try await browser.get("/signin")
    let (status, location) = try await browser.post("/signin", [
        "csrf": try form.between("name=\"csrf\" value=\"", "\"", in: "/signin"), "upn": s.upn,
    ])
    #expect(status == 303)
    #expect(location == "/signin/wait")
    let page = try await browser.get("/signin/wait")
    return WaitPage(
        requestId: try page.between("data-request-id=\"", "\"", in: "/signin/wait"),
        number: try page.between("aria-label=\"Number to enter: ", "\"", in: "/signin/wait"),
        challenge: try page.between("data-browser-challenge=\"", "\"", in: "/signin/wait"),
        listener: try page.between("data-browser-listener=\"", "\"", in: "/signin/wait")
    )
}

/// The wait page's sign-in reaches the phone; it is browser-bound to the server's origin.
func boundRequestReachesPhone(_ s: BoundPhone, _ page: WaitPage) async throws -> PendingRequest {
    let request = try #require(try await s.app.waitForRequests(waitSeconds: 10).first { $0.requestId == page.requestId })
    #expect(request.accountId == s.account.accountId)
    #expect(request.browserOrigin == s.origin, "the UI can tell this request needs the page on this device")
    return request
}

/// One request to the browser listener (or anything at `url`); the status and the
/// `Access-Control-Allow-Origin` it answered. `origin` nil: a client that is not a browser page.
func listenerCall(_ url: String, method: String = "POST", body: String?, origin: String?) async throws -> (status: Int, allowOrigin: String?) {
    var request = URLRequest(url: URL(string: url)!)
    request.httpMethod = method
    if let body {
        request.setValue("text/plain;charset=UTF-8", forHTTPHeaderField: "Content-Type")
        request.httpBody = Data(body.utf8)
    }
    if let origin { request.setValue(origin, forHTTPHeaderField: "Origin") }
    let response: HTTPURLResponse = try await withCheckedThrowingContinuation { cont in
        URLSession.shared.dataTask(with: request) { _, response, error in
            if let error { return cont.resume(throwing: error) }
            guard let http = response as? HTTPURLResponse else {
                return cont.resume(throwing: SigninServer.Failure(description: "no HTTP response from \(url)"))
            }
            cont.resume(returning: http)
        }.resume()
    }
    return (response.statusCode, response.value(forHTTPHeaderField: "Access-Control-Allow-Origin"))
}

/// What the wait page's script sends: the challenge as `text/plain` to the listener, with the
/// `Origin` a browser adds.
func announce(_ page: WaitPage, origin: String?) async throws -> (status: Int, allowOrigin: String?) {
    try await listenerCall(page.listener, body: page.challenge, origin: origin)
}

/// A TCP socket bound to `127.0.0.1:port` (0: a free port) and listening: it holds the port until
/// it is closed or released.
final class LoopbackSocket {
    let port: UInt16
    private var fd: Int32

    init(port: UInt16 = 0) throws {
        #if os(Linux)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw SigninServer.Failure(description: "socket(): errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let size = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, size) }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            let failure = errno
            Self.close(fd)
            throw SigninServer.Failure(description: "bind/listen 127.0.0.1:\(port): errno \(failure)")
        }
        var length = size
        var actual = sockaddr_in()
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.fd = fd
        self.port = UInt16(bigEndian: actual.sin_port)
    }

    func close() {
        if fd >= 0 { Self.close(fd) }
        fd = -1
    }

    deinit { close() }

    private static func close(_ fd: Int32) {
        #if canImport(Glibc)
        _ = Glibc.close(fd)
        #else
        _ = Darwin.close(fd)
        #endif
    }
}

@Suite struct BrowserBindingTests {
    @Test func thePageSeenAtTheServersOriginIsApproved() async throws {
        let s = try await BoundPhone.make()
        defer { s.close() }
        let page = try await signInOnThePages(s)
        // The server points the page's script at the port it was told, which is the app's.
        #expect(page.listener == "http://127.0.0.1:\(s.port)/v1/browser-binding")
        let request = try await boundRequestReachesPhone(s, page)

        let seen = try await announce(page, origin: s.origin)
        #expect(seen.status == 204)
        // What lets the page (and only it) read "seen": CORS for exactly its origin.
        #expect(seen.allowOrigin == s.origin)

        s.keys.clearRequests()
        #expect(try await s.app.approve(request, typedNumber: page.number) == .approved)
        #expect(try await s.server.signInStatus(page.requestId) == "approved")
        #expect(s.keys.prompts == [approvalPrompt(request)], "one approval, after user verification")
    }

    @Test func aPageRelayedFromAnotherOriginIsRefusedNamingBothOriginsAndCanBeReported() async throws {
        let s = try await BoundPhone.make()
        defer { s.close() }
        let page = try await signInOnThePages(s)
        let request = try await boundRequestReachesPhone(s, page)
        // The phishing proxy relays the page, script and challenge included; the victim's
        // browser still writes the proxy's origin.
        let relay = "http://localhost:1"
        #expect(try await announce(page, origin: relay).status == 204)

        s.keys.clearRequests()
        await #expect(throws: AuthenticatorError.BrowserOriginMismatch(seenOrigin: relay, expectedOrigin: s.origin)) {
            _ = try await s.app.approve(request, typedNumber: page.number)
        }
        #expect(s.keys.requests.isEmpty, "refused before user verification, nothing signed")
        #expect(try await s.server.signInStatus(page.requestId) == "pending")
        // What the app offers next: "this wasn't me".
        #expect(try await s.app.reportFraud(request) == .reported)
        #expect(try await s.server.signInStatus(page.requestId) == "reported")
    }

    @Test func aPageNotSeenOnThisDeviceIsRefusedUntilItAnnouncesItself() async throws {
        let s = try await BoundPhone.make()
        defer { s.close() }
        let page = try await signInOnThePages(s)
        let request = try await boundRequestReachesPhone(s, page)
        // Something that is not a page (no Origin) is refused and records nothing.
        let noOrigin = try await announce(page, origin: nil)
        #expect(noOrigin.status == 403)
        #expect(noOrigin.allowOrigin == nil)

        s.keys.clearRequests()
        await #expect(throws: AuthenticatorError.BrowserNotSeen) {
            _ = try await s.app.approve(request, typedNumber: page.number)
        }
        #expect(s.keys.requests.isEmpty, "refused before user verification, nothing signed")
        #expect(try await s.server.signInStatus(page.requestId) == "pending")

        // "Open the sign-in page on this device": once it is seen, the same request approves.
        #expect(try await announce(page, origin: s.origin).status == 204)
        #expect(try await s.app.approve(request, typedNumber: page.number) == .approved)
        #expect(try await s.server.signInStatus(page.requestId) == "approved")
    }
}
