import AuthenticatorCore
import Foundation
import Testing
@testable import PhoneSignIn

/// Failures inside Swift callbacks and malformed input from the shell reach the caller as typed
/// `AuthenticatorError`s — never a crash, never a hang.
@Suite struct ErrorTests {
    struct KeychainExploded: Error {}

    final class ThrowingKeyStore: DeviceKeyStore, @unchecked Sendable {
        func generate(alias: String, requireUserVerification: Bool) async throws -> Data { throw KeychainExploded() }
        func sign(alias: String, message: Data) async throws -> Data { throw KeychainExploded() }
        func delete(alias: String) async throws { throw KeychainExploded() }
    }

    final class ThrowingVerifier: UserVerifier, @unchecked Sendable {
        func verify(reason: String) async throws -> VerificationOutcome { throw KeychainExploded() }
    }

    final class GarbageKeyStore: DeviceKeyStore, @unchecked Sendable {
        func generate(alias: String, requireUserVerification: Bool) async throws -> Data { Data([1, 2, 3]) }
        func sign(alias: String, message: Data) async throws -> Data { Data([4, 5, 6]) }
        func delete(alias: String) async throws {}
    }

    let server: SigninServer
    init() throws { server = try sharedServer.get() }

    @Test func undeclaredSwiftErrorInACallbackIsATypedKeyStoreError() async throws {
        let (_, link) = try server.newUser()
        let app = try PhoneSignIn(dataDirectory: tempDirectory(), keyStore: ThrowingKeyStore(), verifier: ScriptedVerifier())
        do {
            _ = try await app.enroll(link: link, deviceName: "phone")
            Issue.record("enrollment succeeded with a failing key store")
        } catch let AuthenticatorError.KeyStore(reason) {
            #expect(reason.contains("KeychainExploded"))
        }
        #expect(try await app.accounts().isEmpty, "nothing stored after a failed enrollment")
    }

    @Test func throwingVerifierFailsVerificationAndPhoneSignInStaysOff() async throws {
        let (_, link) = try server.newUser()
        let app = try PhoneSignIn(dataDirectory: tempDirectory(), keyStore: EnclaveFormatKeyStore(), verifier: ThrowingVerifier())
        let account = try await app.enroll(link: link, deviceName: "phone")
        await #expect(throws: AuthenticatorError.VerificationFailed) {
            _ = try await app.enablePhoneSignIn(accountId: account.accountId)
        }
        #expect(try await app.accounts().map(\.phoneSignInEnabled) == [false])
    }

    @Test func unusableKeyFormatIsATypedKeyStoreError() async throws {
        let (_, link) = try server.newUser()
        let app = try PhoneSignIn(dataDirectory: tempDirectory(), keyStore: GarbageKeyStore(), verifier: ScriptedVerifier())
        do {
            _ = try await app.enroll(link: link, deviceName: "phone")
            Issue.record("enrollment succeeded with garbage keys")
        } catch AuthenticatorError.KeyStore {}
    }

    @Test(arguments: ["", "not a link", "https://example.test/enroll", "phonesignin://enroll?v=2&server=x&code=y&fp=z"])
    func malformedEnrollmentLinkIsATypedError(link: String) async throws {
        let app = try PhoneSignIn(dataDirectory: tempDirectory(), keyStore: EnclaveFormatKeyStore(), verifier: ScriptedVerifier())
        do {
            _ = try await app.enroll(link: link, deviceName: "phone")
            Issue.record("accepted \(link)")
        } catch AuthenticatorError.InvalidEnrollmentUrl {}
    }

    @Test(arguments: ["", "{", "[]", #"{"aps": {}}"#, #"{"psi": {"v": 1, "aid": 5}}"#])
    func malformedPushJSONIsATypedError(json: String) async throws {
        let app = try PhoneSignIn(dataDirectory: tempDirectory(), keyStore: EnclaveFormatKeyStore(), verifier: ScriptedVerifier())
        do {
            _ = try app.core.parsePushJson(payload: json)
            Issue.record("parsed \(json)")
        } catch AuthenticatorError.InvalidPushPayload {}
        do {
            _ = try await app.core.handlePushJson(payload: json)
            Issue.record("handled \(json)")
        } catch AuthenticatorError.InvalidPushPayload {}
    }

    @Test func userInfoThatIsNotJSONIsATypedError() async throws {
        let app = try PhoneSignIn(dataDirectory: tempDirectory(), keyStore: EnclaveFormatKeyStore(), verifier: ScriptedVerifier())
        do {
            _ = try await app.handleRemoteNotification(userInfo: ["psi": Date()])
            Issue.record("accepted a Date in userInfo")
        } catch AuthenticatorError.InvalidPushPayload {}
    }

    @Test func emptyDataDirectoryIsATypedError() {
        #expect(throws: AuthenticatorError.InvalidInput(reason: "the data directory is empty")) {
            _ = try Authenticator(dataDir: "", keyStore: EnclaveFormatKeyStore(), verifier: ScriptedVerifier())
        }
    }
}
