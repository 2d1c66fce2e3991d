import AuthenticatorCore
import Foundation
import Testing
@testable import PhoneSignIn

/// One signin-server for the whole suite (each test enrolls its own user).
let sharedServer = Result { try SigninServer.start() }

func tempDirectory() -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("phone-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

struct Phone {
    let upn: String
    let keys: EnclaveFormatKeyStore
    let verifier: ScriptedVerifier
    let app: PhoneSignIn
    let account: AccountSummary
}

/// Enrolls a fresh user's phone from its registration link and enables phone sign-in.
func enrolledPhone(_ server: SigninServer) async throws -> Phone {
    let (upn, link) = try server.newUser()
    let keys = EnclaveFormatKeyStore()
    let verifier = ScriptedVerifier()
    let app = try PhoneSignIn(dataDirectory: tempDirectory(), keyStore: keys, verifier: verifier)
    let enrolled = try await app.enroll(link: link, deviceName: "Swift test phone")
    #expect(enrolled.upn == upn)
    #expect(!enrolled.phoneSignInEnabled)
    let account = try await app.enablePhoneSignIn(accountId: enrolled.accountId)
    #expect(account.phoneSignInEnabled)
    return Phone(upn: upn, keys: keys, verifier: verifier, app: app, account: account)
}

/// Starts a sign-in on the "page" and receives it on the phone by long-poll.
func signInReachesPhone(_ server: SigninServer, _ phone: Phone, app: String) async throws -> (id: String, number: String, request: PendingRequest) {
    let (id, number) = try await server.startSignIn(upn: phone.upn, app: app)
    let requests = try await phone.app.waitForRequests(waitSeconds: 10)
    let request = try #require(requests.first { $0.requestId == id })
    return (id, number, request)
}

@Suite struct CeremonyTests {
    let server: SigninServer
    init() throws { server = try sharedServer.get() }

    @Test func enrollEnableAndApproveWithTheTypedNumber() async throws {
        let phone = try await enrolledPhone(server)
        // Secure Enclave formats went in: 65-byte SEC1 public keys.
        #expect(phone.keys.allPublicKeys.count == 2)
        #expect(phone.keys.allPublicKeys.allSatisfy { $0.count == 65 && $0.first == 0x04 })
        let (id, number, request) = try await signInReachesPhone(server, phone, app: "Contoso Mail")

        #expect(request.appName == "Contoso Mail")
        #expect(request.location == "Unknown location") // loopback has no GeoIP location
        #expect(request.upn == phone.upn)
        #expect(request.numberMatching)
        #expect(try await phone.app.approve(request, typedNumber: number) == .approved)
        #expect(try await server.signInStatus(id) == "approved")
        #expect(phone.verifier.prompts > 0)
    }

    @Test func denyIsSignedAndTheServerRecordsIt() async throws {
        let phone = try await enrolledPhone(server)
        let (id, _, request) = try await signInReachesPhone(server, phone, app: "Contoso Portal")
        #expect(try await phone.app.deny(request) == .denied)
        #expect(try await server.signInStatus(id) == "denied")
    }

    @Test func wrongNumberIsATypedErrorAndTheRightOneStillWorks() async throws {
        let phone = try await enrolledPhone(server)
        let (id, number, request) = try await signInReachesPhone(server, phone, app: "Contoso Mail")
        let wrong = number == "42" ? "43" : "42"
        await #expect(throws: AuthenticatorError.WrongNumber(attemptsLeft: 2)) {
            _ = try await phone.app.approve(request, typedNumber: wrong)
        }
        #expect(try await server.signInStatus(id) == "pending")
        #expect(try await phone.app.approve(request, typedNumber: number) == .approved)
    }

    @Test func refusedVerificationSignsNothing() async throws {
        let phone = try await enrolledPhone(server)
        let (id, number, request) = try await signInReachesPhone(server, phone, app: "Contoso Mail")
        let before = phone.keys.signatureCount
        phone.verifier.outcome = .denied
        await #expect(throws: AuthenticatorError.VerificationFailed) {
            _ = try await phone.app.approve(request, typedNumber: number)
        }
        phone.verifier.outcome = .cancelled
        await #expect(throws: AuthenticatorError.UserCancelled) {
            _ = try await phone.app.approve(request, typedNumber: number)
        }
        #expect(phone.keys.signatureCount == before, "no signature without verification")
        #expect(try await server.signInStatus(id) == "pending")
    }

    @Test func apnsUserInfoIsForwardedAndTheNotificationNeverShowsTheNumber() async throws {
        let phone = try await enrolledPhone(server)
        let (id, number) = try await server.startSignIn(upn: phone.upn, app: "Contoso HR")
        // The APNs userInfo of docs/PROTOCOL.md §6.1, as the Notification Service Extension gets it.
        let userInfo: [AnyHashable: Any] = [
            "aps": ["alert": ["title": "Sign-in request", "body": "Open to review"], "mutable-content": 1],
            "psi": ["v": 1, "aid": phone.account.accountId, "rid": id],
        ]
        let outcome = try await phone.app.handleRemoteNotification(userInfo: userInfo)
        guard case let .showRequest(shown) = outcome else {
            Issue.record("expected a request to show, got \(outcome)")
            return
        }
        let text = try #require(SignInNotificationContent(outcome: outcome))
        // The whole text, line by line: account, app, location, server — nothing else, so never
        // the number. (A substring check for the number would be flaky: the UPN and the
        // server's port are digits too.)
        #expect(text.title == "Approve sign-in?")
        #expect(
            text.body.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
                == [phone.upn, "App: Contoso HR", "Location: Unknown location", shown.serverName])

        #expect(try await phone.app.approve(shown, typedNumber: number) == .approved)
        #expect(try await phone.app.handleRemoteNotification(userInfo: userInfo) == .alreadyAnswered)
    }

    @Test func cancellingTheLongWaitReturnsPromptly() async throws {
        let phone = try await enrolledPhone(server)
        let started = Date()
        let waiting = Task { try await phone.app.waitForRequests(waitSeconds: 60) }
        try await Task.sleep(nanoseconds: 300_000_000)
        waiting.cancel()
        let result = await waiting.result
        #expect(throws: CancellationError.self) { try result.get() }
        #expect(Date().timeIntervalSince(started) < 30, "the 60 s wait ended early: it was cancelled")

        let (id, number, request) = try await signInReachesPhone(server, phone, app: "Contoso Mail")
        #expect(try await phone.app.approve(request, typedNumber: number) == .approved)
        #expect(try await server.signInStatus(id) == "approved")
    }

    @Test func generatedBindingsUseTheConfiguredModule() {
        #expect(String(reflecting: Authenticator.self) == "AuthenticatorCore.Authenticator")
        #expect(String(reflecting: AuthenticatorError.self) == "AuthenticatorCore.AuthenticatorError")
    }
}
