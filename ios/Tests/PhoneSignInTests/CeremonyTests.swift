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
    let app: PhoneSignIn
    let account: AccountSummary
}

/// The prompt the core passes with an approval signature.
func approvalPrompt(_ request: PendingRequest) -> String {
    "Approve sign-in to \(request.serverName) as \(request.upn)"
}

/// Enrolls a fresh user's phone from its registration link and, unless `phoneSignIn` is false,
/// enables phone sign-in. With a `password`, the user can also sign in on the pages with
/// password + push.
func enrolledPhone(_ server: SigninServer, phoneSignIn: Bool = true, password: String? = nil) async throws -> Phone {
    let (upn, link) = try server.newUser(password: password)
    let keys = EnclaveFormatKeyStore()
    let app = try PhoneSignIn(dataDirectory: tempDirectory(), keyStore: keys)
    let enrolled = try await app.enroll(link: link, deviceName: "Swift test phone")
    #expect(enrolled.upn == upn)
    #expect(!enrolled.phoneSignInEnabled)
    guard phoneSignIn else { return Phone(upn: upn, keys: keys, app: app, account: enrolled) }
    let account = try await app.enablePhoneSignIn(accountId: enrolled.accountId)
    #expect(account.phoneSignInEnabled)
    return Phone(upn: upn, keys: keys, app: app, account: account)
}

/// Starts a phone sign-in from the registered application `app` and receives it on the phone
/// by long-poll.
func signInReachesPhone(_ server: SigninServer, _ phone: Phone, app: String) async throws -> (id: String, number: String, request: PendingRequest) {
    let (id, number) = try await server.startSignIn(upn: phone.upn, app: app)
    return (id, number, try await requestReachesPhone(phone, id: id))
}

/// Receives the request `id` on the phone by long-poll.
func requestReachesPhone(_ phone: Phone, id: String) async throws -> PendingRequest {
    let requests = try await phone.app.waitForRequests(waitSeconds: 10)
    return try #require(requests.first { $0.requestId == id })
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
        #expect(request.kind == .passwordless)
        #expect(try await phone.app.approve(request, typedNumber: number) == .approved)
        #expect(try await server.signInStatus(id) == "approved")
    }

    @Test func aNewApnsDeviceTokenIsToldToTheServerAndTheChannelChanges() async throws {
        let phone = try await enrolledPhone(server)
        #expect(try server.userShow(upn: phone.upn).contains("push longpoll"))
        // What the APNs registration callback does with a token other than the enrolled one.
        let token = PhoneSignIn.apns(deviceToken: Data(repeating: 0xab, count: 32))
        let results = try await phone.app.updatePushRegistration(token)
        #expect(results.count == 1)
        #expect(results.first?.accountId == phone.account.accountId)
        #expect(results.first?.upn == phone.upn)
        #expect(results.first?.outcome == .updated)
        #expect(try server.userShow(upn: phone.upn).contains("push apns"))
    }

    @Test func phoneSignInApprovalIsSignedByTheUserVerificationKeyWithThePrompt() async throws {
        let phone = try await enrolledPhone(server)
        let (id, number, request) = try await signInReachesPhone(server, phone, app: "Contoso Mail")
        phone.keys.clearRequests()
        #expect(try await phone.app.approve(request, typedNumber: number) == .approved)
        #expect(try await server.signInStatus(id) == "approved")
        let approval = try #require(phone.keys.requests.only)
        #expect(approval.alias.hasSuffix(".passwordless"))
        #expect(approval.prompt == approvalPrompt(request))
        #expect(approval.prompt?.contains(phone.upn) == true)
    }

    @Test func pushApprovalIsSignedByTheDeviceKeyWithThePromptToo() async throws {
        // No phone sign-in: the pages ask for the password, then the phone approves as the
        // second factor, with the device key (no user-verification binding of its own).
        let password = "swift password 1"
        let phone = try await enrolledPhone(server, phoneSignIn: false, password: password)
        #expect(phone.keys.prompts.isEmpty, "enrollment and device authentication prompt for nothing")
        let (id, number) = try await server.startPushSignIn(upn: phone.upn, password: password)
        let request = try await requestReachesPhone(phone, id: id)
        #expect(request.kind == .push)
        phone.keys.clearRequests()
        #expect(try await phone.app.approve(request, typedNumber: number) == .approved)
        #expect(try await server.signInStatus(id) == "approved")
        let approval = try #require(phone.keys.requests.only)
        #expect(approval.alias.hasSuffix(".device"))
        #expect(approval.prompt == approvalPrompt(request))
    }

    @Test func denyAndReportFraudAreSignedWithoutAPrompt() async throws {
        let phone = try await enrolledPhone(server)
        let (denied, _, first) = try await signInReachesPhone(server, phone, app: "Contoso Portal")
        phone.keys.clearRequests()
        #expect(try await phone.app.deny(first) == .denied)
        #expect(try await server.signInStatus(denied) == "denied")
        #expect(phone.keys.requests.map(\.prompt) == [nil], "one signature, no prompt")

        let (reported, _, second) = try await signInReachesPhone(server, phone, app: "Contoso Portal")
        phone.keys.clearRequests()
        #expect(try await phone.app.reportFraud(second) == .reported)
        #expect(try await server.signInStatus(reported) == "reported")
        #expect(phone.keys.requests.map(\.prompt) == [nil], "\"this wasn't me\" needs no verification")
    }

    @Test func enablingPhoneSignInPromptsExactlyOnce() async throws {
        let phone = try await enrolledPhone(server, phoneSignIn: false)
        #expect(phone.keys.prompts.isEmpty, "enrollment prompts for nothing")
        phone.keys.clearRequests()
        let account = try await phone.app.enablePhoneSignIn(accountId: phone.account.accountId)
        #expect(account.phoneSignInEnabled)
        let prompted = phone.keys.requests.filter { $0.prompt != nil }
        #expect(prompted.count == 1)
        // The prompt comes with the new phone-sign-in key's first signature; the device key
        // co-signs the registration without one.
        #expect(prompted.first?.alias.hasSuffix(".passwordless") == true)
        #expect(prompted.first?.prompt == "Enable phone sign-in for \(phone.upn)")
        #expect(phone.keys.requests.contains { $0.alias.hasSuffix(".device") && $0.prompt == nil })
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

    @Test func failedVerificationSignsNothingAndTheRequestStaysPending() async throws {
        let phone = try await enrolledPhone(server)
        let (id, number, request) = try await signInReachesPhone(server, phone, app: "Contoso Mail")
        let before = phone.keys.signatureCount
        phone.keys.clearRequests()
        phone.keys.answer = .failed
        await #expect(throws: AuthenticatorError.VerificationFailed) {
            _ = try await phone.app.approve(request, typedNumber: number)
        }
        #expect(phone.keys.prompts == [approvalPrompt(request)], "the user was asked, once")
        #expect(phone.keys.signatureCount == before, "no signature without verification")
        #expect(try await server.signInStatus(id) == "pending")
        // The user may try again.
        phone.keys.answer = .verified
        #expect(try await phone.app.approve(request, typedNumber: number) == .approved)
    }

    @Test func dismissedPromptSignsNothingAndTheRequestStaysPending() async throws {
        let phone = try await enrolledPhone(server)
        let (id, number, request) = try await signInReachesPhone(server, phone, app: "Contoso Mail")
        let before = phone.keys.signatureCount
        phone.keys.answer = .cancelled
        await #expect(throws: AuthenticatorError.UserCancelled) {
            _ = try await phone.app.approve(request, typedNumber: number)
        }
        #expect(phone.keys.signatureCount == before, "no signature without verification")
        #expect(try await server.signInStatus(id) == "pending")
        phone.keys.answer = .verified
        #expect(try await phone.app.approve(request, typedNumber: number) == .approved)
        #expect(try await server.signInStatus(id) == "approved")
    }

    /// The key store's prompt hangs (never returns, ignores cancellation): cancelling the
    /// approving `Task` still ends the approval at once with `CancellationError`, nothing is
    /// signed, the request stays pending, and it can be approved afterwards.
    @Test func cancellingTheTaskEndsAnApprovalWhosePromptHangs() async throws {
        let phone = try await enrolledPhone(server)
        let (id, number, request) = try await signInReachesPhone(server, phone, app: "Contoso Mail")
        let before = phone.keys.signatureCount
        let promptsBefore = phone.keys.prompts.count
        phone.keys.answer = .hangs
        let app = phone.app
        let approving = Task { try await app.approve(request, typedNumber: number) }
        while phone.keys.prompts.count == promptsBefore { try await Task.sleep(nanoseconds: 10_000_000) }
        approving.cancel()
        await #expect(throws: CancellationError.self) { _ = try await approving.value }
        #expect(phone.keys.signatureCount == before)
        #expect(try await server.signInStatus(id) == "pending")
        phone.keys.answer = .verified
        #expect(try await phone.app.approve(request, typedNumber: number) == .approved)
        #expect(try await server.signInStatus(id) == "approved")
    }

    @Test func noBiometricsOrPasscodeFailsClosed() async throws {
        let phone = try await enrolledPhone(server)
        let (id, number, request) = try await signInReachesPhone(server, phone, app: "Contoso Mail")
        let before = phone.keys.signatureCount
        phone.keys.answer = .notAvailable
        await #expect(throws: AuthenticatorError.VerificationUnavailable) {
            _ = try await phone.app.approve(request, typedNumber: number)
        }
        #expect(phone.keys.signatureCount == before)
        #expect(try await server.signInStatus(id) == "pending")
    }

    @Test func removedAccountForgetsItsKeysAndIsNotEnrolled() async throws {
        let phone = try await enrolledPhone(server)
        #expect(phone.keys.aliases.count == 2)
        try await phone.app.removeAccount(accountId: phone.account.accountId)
        #expect(try await phone.app.accounts().isEmpty)
        #expect(phone.keys.aliases.isEmpty, "both keys deleted")
        await #expect(throws: AuthenticatorError.NotEnrolled) {
            try await phone.app.removeAccount(accountId: phone.account.accountId)
        }
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

    /// Swift 6 strict concurrency: an app that handles notifications on its own actor passes a
    /// `RemoteNotification` (Sendable) across; this test compiles only because it is one.
    @Test func anApnsNotificationCrossesActorsAsASendableValue() async throws {
        let phone = try await enrolledPhone(server)
        let (id, _) = try await server.startSignIn(upn: phone.upn, app: "Contoso HR")
        let notification = try RemoteNotification(userInfo: [
            "aps": ["alert": ["title": "Sign-in request", "body": "Open to review"]],
            "psi": ["v": 1, "aid": phone.account.accountId, "rid": id],
        ])
        let inbox = NotificationInbox(phone: phone.app)
        let outcome = try await Task.detached { try await inbox.receive(notification) }.value
        guard case let .showRequest(shown) = outcome else {
            Issue.record("expected a request to show, got \(outcome)")
            return
        }
        #expect(shown.requestId == id)
        #expect(shown.accountId == phone.account.accountId)
        // The same payload from JSON text gives the same value; a payload that is not JSON
        // fails where it is made, typed.
        #expect(RemoteNotification(json: notification.json) == notification)
        #expect(throws: AuthenticatorError.self) {
            _ = try RemoteNotification(userInfo: ["psi": Date()])
        }
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

extension Array {
    /// The one element, or nil when there are none or several.
    var only: Element? { count == 1 ? first : nil }
}

/// An app's notification handling isolated on its own actor: only Sendable values enter it.
actor NotificationInbox {
    let phone: PhoneSignIn

    init(phone: PhoneSignIn) {
        self.phone = phone
    }

    func receive(_ notification: RemoteNotification) async throws -> PushOutcome {
        try await phone.handleRemoteNotification(notification)
    }
}
