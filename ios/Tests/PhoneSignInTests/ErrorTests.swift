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
        func sign(alias: String, message: Data, prompt: String?) async throws -> Data { throw KeychainExploded() }
        func delete(alias: String) async throws { throw KeychainExploded() }
    }

    /// Keys as the Secure Enclave makes them, but the user-verification prompt throws an
    /// error the core does not declare.
    final class ThrowingPromptKeyStore: DeviceKeyStore, @unchecked Sendable {
        let keys = EnclaveFormatKeyStore()
        func generate(alias: String, requireUserVerification: Bool) async throws -> Data {
            try await keys.generate(alias: alias, requireUserVerification: requireUserVerification)
        }
        func sign(alias: String, message: Data, prompt: String?) async throws -> Data {
            if prompt != nil { throw KeychainExploded() }
            return try await keys.sign(alias: alias, message: message, prompt: nil)
        }
        func delete(alias: String) async throws { try await keys.delete(alias: alias) }
    }

    final class GarbageKeyStore: DeviceKeyStore, @unchecked Sendable {
        func generate(alias: String, requireUserVerification: Bool) async throws -> Data { Data([1, 2, 3]) }
        func sign(alias: String, message: Data, prompt: String?) async throws -> Data { Data([4, 5, 6]) }
        func delete(alias: String) async throws {}
    }

    let server: SigninServer
    init() throws { server = try sharedServer.get() }

    @Test func undeclaredSwiftErrorInACallbackIsATypedKeyStoreError() async throws {
        let (_, link) = try server.newUser()
        let app = try PhoneSignIn(dataDirectory: tempDirectory(), keyStore: ThrowingKeyStore())
        do {
            _ = try await app.enroll(link: link, deviceName: "phone")
            Issue.record("enrollment succeeded with a failing key store")
        } catch let AuthenticatorError.KeyStore(reason) {
            #expect(reason.contains("KeychainExploded"))
        }
        #expect(try await app.accounts().isEmpty, "nothing stored after a failed enrollment")
    }

    @Test func throwingPromptIsATypedKeyStoreErrorAndPhoneSignInStaysOff() async throws {
        let (_, link) = try server.newUser()
        let store = ThrowingPromptKeyStore()
        let app = try PhoneSignIn(dataDirectory: tempDirectory(), keyStore: store)
        let account = try await app.enroll(link: link, deviceName: "phone")
        let enrolledKeys = store.keys.aliases
        do {
            _ = try await app.enablePhoneSignIn(accountId: account.accountId)
            Issue.record("phone sign-in enabled although the prompt failed")
        } catch let AuthenticatorError.KeyStore(reason) {
            #expect(reason.contains("KeychainExploded"))
        }
        #expect(try await app.accounts().map(\.phoneSignInEnabled) == [false])
        #expect(store.keys.aliases == enrolledKeys, "the new phone-sign-in key was deleted again")
    }

    @Test(arguments: [
        (PromptAnswer.failed, AuthenticatorError.VerificationFailed),
        (PromptAnswer.notAvailable, AuthenticatorError.VerificationUnavailable),
        (PromptAnswer.cancelled, AuthenticatorError.UserCancelled),
    ])
    func refusedPromptWhenEnablingIsTypedAndPhoneSignInStaysOff(answer: PromptAnswer, error: AuthenticatorError) async throws {
        let (_, link) = try server.newUser()
        let keys = EnclaveFormatKeyStore()
        let app = try PhoneSignIn(dataDirectory: tempDirectory(), keyStore: keys)
        let account = try await app.enroll(link: link, deviceName: "phone")
        keys.answer = answer
        await #expect(throws: error) {
            _ = try await app.enablePhoneSignIn(accountId: account.accountId)
        }
        #expect(keys.prompts.count == 1)
        #expect(try await app.accounts().map(\.phoneSignInEnabled) == [false])
        // Refusing is not final: the user can enable it later.
        keys.answer = .verified
        #expect(try await app.enablePhoneSignIn(accountId: account.accountId).phoneSignInEnabled)
    }

    @Test func unusableKeyFormatIsATypedKeyStoreError() async throws {
        let (_, link) = try server.newUser()
        let app = try PhoneSignIn(dataDirectory: tempDirectory(), keyStore: GarbageKeyStore())
        do {
            _ = try await app.enroll(link: link, deviceName: "phone")
            Issue.record("enrollment succeeded with garbage keys")
        } catch AuthenticatorError.KeyStore {}
    }

    @Test(arguments: ["", "not a link", "https://example.test/enroll", "phonesignin://enroll?v=2&server=x&code=y&fp=z"])
    func malformedEnrollmentLinkIsATypedError(link: String) async throws {
        let app = try PhoneSignIn(dataDirectory: tempDirectory(), keyStore: EnclaveFormatKeyStore())
        do {
            _ = try await app.enroll(link: link, deviceName: "phone")
            Issue.record("accepted \(link)")
        } catch AuthenticatorError.InvalidEnrollmentUrl {}
    }

    @Test(arguments: ["", "{", "[]", #"{"aps": {}}"#, #"{"psi": {"v": 1, "aid": 5}}"#])
    func malformedPushJSONIsATypedError(json: String) async throws {
        let app = try PhoneSignIn(dataDirectory: tempDirectory(), keyStore: EnclaveFormatKeyStore())
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
        let app = try PhoneSignIn(dataDirectory: tempDirectory(), keyStore: EnclaveFormatKeyStore())
        do {
            _ = try await app.handleRemoteNotification(userInfo: ["psi": Date()])
            Issue.record("accepted a Date in userInfo")
        } catch AuthenticatorError.InvalidPushPayload {}
    }

    /// `URL(fileURLWithPath: "")` is the working directory: the facade refuses it (and every
    /// other relative path) as Kotlin's refuses "", instead of creating a database there.
    @Test(arguments: ["", ".", "phonesignin", "./phonesignin", "../x"])
    func relativeDataDirectoryIsRefusedByTheFacade(path: String) {
        do {
            _ = try PhoneSignIn(dataDirectory: URL(fileURLWithPath: path), keyStore: EnclaveFormatKeyStore())
            Issue.record("opened a database at the relative path \"\(path)\"")
        } catch AuthenticatorError.InvalidInput(let reason) {
            #expect(reason.contains("absolute"))
        } catch {
            Issue.record("\(error)")
        }
        #expect(!FileManager.default.fileExists(atPath: FileManager.default.currentDirectoryPath + "/authenticator.sqlite3"))
        do {
            _ = try PhoneSignIn(dataDirectory: URL(string: "https://example.test/data")!, keyStore: EnclaveFormatKeyStore())
            Issue.record("opened a database at a web URL")
        } catch AuthenticatorError.InvalidInput {
        } catch {
            Issue.record("\(error)")
        }
    }

    @Test func emptyDataDirectoryIsATypedError() {
        #expect(throws: AuthenticatorError.InvalidInput(reason: "the data directory is empty")) {
            _ = try Authenticator(dataDir: "", keyStore: EnclaveFormatKeyStore())
        }
    }
}
