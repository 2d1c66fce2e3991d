import AuthenticatorCore
import Foundation
import Testing
@testable import PhoneSignIn
#if canImport(CryptoKit)
import CryptoKit
#else
import COpenSSL
#endif

/// A `SecretStore` for the tests, shaped like a Keychain item store: the secret stays in the
/// store, the core keeps an opaque handle, and it opens only under the context it was sealed
/// with.
final class HandleSecretStore: SecretStore, @unchecked Sendable {
    private let lock = NSLock()
    private var items: [Data: (context: String, secret: Data)] = [:]

    func seal(context: String, plaintext: Data) async throws -> Data {
        let handle = Data(UUID().uuidString.utf8)
        lock.withLock { items[handle] = (context, plaintext) }
        return handle
    }

    func unseal(context: String, sealed: Data) async throws -> Data {
        let found = lock.withLock { items[sealed] }
        guard let item = found, item.context == context else {
            throw PlatformError.Failed(reason: "unknown handle or context")
        }
        return item.secret
    }
}

/// HMAC-SHA-1 from the platform's crypto (CryptoKit, or OpenSSL's libcrypto on Linux).
func hmacSHA1(key: Data, message: Data) -> Data {
    #if canImport(CryptoKit)
    return Data(HMAC<Insecure.SHA1>.authenticationCode(for: message, using: SymmetricKey(data: key)))
    #else
    var out = [UInt8](repeating: 0, count: 64)
    var length = 0
    let done = key.withUnsafeBytes { k in
        message.withUnsafeBytes { m in
            EVP_Q_mac(nil, "HMAC", nil, "SHA1", nil, k.baseAddress, key.count,
                      m.bindMemory(to: UInt8.self).baseAddress, message.count, &out, out.count, &length)
        }
    }
    precondition(done != nil, "HMAC-SHA1 failed")
    return Data(out[0..<length])
    #endif
}

/// RFC 6238 (HMAC-SHA-1, 30 s, 6 digits) at Unix time `secs`, computed independently of the core.
func referenceCode(secret: Data, secs: UInt64) -> String {
    var counter = (secs / 30).bigEndian
    let hash = [UInt8](hmacSHA1(key: secret, message: Data(bytes: &counter, count: 8)))
    let offset = Int(hash[hash.count - 1] & 15)
    let value = (UInt32(hash[offset] & 0x7f) << 24) | (UInt32(hash[offset + 1]) << 16)
        | (UInt32(hash[offset + 2]) << 8) | UInt32(hash[offset + 3])
    let code = String(value % 1_000_000)
    return String(repeating: "0", count: 6 - code.count) + code
}

/// The offline fallback's TOTP through the Swift facade (issue 11): the secret an enrollment
/// brings from the real signin-server, `otpauth://` imports whose codes match an independent
/// RFC 6238 computation, removal, and typed errors.
@Suite struct TotpTests {
    @Test func theEnrollmentBringsATotpAccountThatGoesWithTheAccount() async throws {
        let server = try sharedServer.get()
        let (upn, link) = try server.newUser()
        let phone = try PhoneSignIn(dataDirectory: tempDirectory(), keyStore: EnclaveFormatKeyStore(),
                                    secretStore: HandleSecretStore())
        let account = try await phone.enroll(link: link, deviceName: "Swift test phone")
        let totps = try await phone.totpAccounts()
        #expect(totps.count == 1)
        let totp = try #require(totps.first)
        #expect(totp.accountId == account.accountId)
        #expect(totp.accountName == upn)
        #expect(totp.algorithm == "SHA1" && totp.digits == 6 && totp.period == 30)
        let code = try await phone.totpCode(totp)
        #expect(code.code.count == 6 && code.code.allSatisfy(\.isNumber))
        #expect((1...30).contains(code.secondsRemaining))
        try await phone.removeAccount(accountId: account.accountId)
        #expect(try await phone.totpAccounts().isEmpty)
        await #expect(throws: AuthenticatorError.UnknownTotpAccount) { _ = try await phone.totpCode(totp) }
    }

    @Test func importedAccountsShowRfc6238CodesUntilRemoved() async throws {
        let phone = try PhoneSignIn(dataDirectory: tempDirectory(), keyStore: EnclaveFormatKeyStore(),
                                    secretStore: HandleSecretStore())
        // "12345678901234567890" (RFC 6238's SHA-1 seed) in base32.
        let github = try await phone.addTotpAccount(
            uri: "otpauth://totp/GitHub:bobby?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=GitHub")
        #expect(github.issuer == "GitHub" && github.accountName == "bobby" && github.accountId == nil)
        let now = UInt64(Date().timeIntervalSince1970)
        let code = try await phone.totpCode(github).code
        let secret = Data("12345678901234567890".utf8)
        #expect(code == referenceCode(secret: secret, secs: now) || code == referenceCode(secret: secret, secs: now + 30))
        try await phone.removeTotpAccount(github)
        #expect(try await phone.totpAccounts().isEmpty)
        await #expect(throws: AuthenticatorError.UnknownTotpAccount) { try await phone.removeTotpAccount(github) }
    }

    /// Hostile text through the TOTP methods of the raw core (SECURITY row 34): each call returns
    /// or throws the typed error that input can cause, never a panic or another error.
    @Test func hostileTextThroughTheTotpMethodsIsTypedNeverAPanic() async throws {
        let tally = HostileTally()
        let phone = try PhoneSignIn(dataDirectory: tempDirectory(), keyStore: EnclaveFormatKeyStore(),
                                    secretStore: HandleSecretStore())
        for text in hostileText {
            let short = String(text.prefix(16))
            await hostile(tally, "addTotpAccount(\(short))", allowed: ["InvalidTotpUri"]) {
                try await phone.addTotpAccount(uri: text)
            }
            await hostile(tally, "addTotpAccount(label \(short))", allowed: ["InvalidTotpUri"]) {
                try await phone.addTotpAccount(uri: "otpauth://totp/\(text)?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")
            }
            await hostile(tally, "totpCode(\(short))", allowed: ["UnknownTotpAccount"]) {
                try await phone.core.totpCode(totpId: text)
            }
            await hostile(tally, "removeTotpAccount(\(short))", allowed: ["UnknownTotpAccount"]) {
                try await phone.core.removeTotpAccount(totpId: text)
            }
        }
        for account in try await phone.totpAccounts() {
            #expect(!(account.issuer + account.accountName).unicodeScalars.contains { $0.properties.generalCategory == .control })
            let code = try await phone.totpCode(account)
            let digits = code.code.allSatisfy { $0.isNumber }
            #expect(digits)
        }
        #expect(tally.outcomes["PANIC"] == nil && tally.outcomes["untyped"] == nil)
        #expect(tally.calls >= 4 * hostileText.count)
        tally.report("TOTP")
    }

    @Test func badUrisAndMissingOrFailingSecretStoresAreTypedErrors() async throws {
        let phone = try PhoneSignIn(dataDirectory: tempDirectory(), keyStore: EnclaveFormatKeyStore(),
                                    secretStore: HandleSecretStore())
        do {
            _ = try await phone.addTotpAccount(uri: "otpauth://totp/x?secret=GEZDGNBVGY3TQOJQ&digits=12")
            Issue.record("accepted a 12-digit TOTP")
        } catch AuthenticatorError.InvalidTotpUri(let reason) {
            #expect(!reason.contains("GEZDGNBV"))
        }
        let bare = try PhoneSignIn(dataDirectory: tempDirectory(), keyStore: EnclaveFormatKeyStore())
        await #expect(throws: AuthenticatorError.SecretStoreUnavailable) {
            _ = try await bare.addTotpAccount(uri: "otpauth://totp/x?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")
        }
        struct Exploded: Error {}
        final class Failing: SecretStore, @unchecked Sendable {
            func seal(context: String, plaintext: Data) async throws -> Data { throw Exploded() }
            func unseal(context: String, sealed: Data) async throws -> Data { throw Exploded() }
        }
        let failing = try PhoneSignIn(dataDirectory: tempDirectory(), keyStore: EnclaveFormatKeyStore(),
                                      secretStore: Failing())
        do {
            _ = try await failing.addTotpAccount(uri: "otpauth://totp/x?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")
            Issue.record("a failing secret store stored a secret")
        } catch AuthenticatorError.KeyStore(_) {
        }
        #expect(try await failing.totpAccounts().isEmpty)
    }
}
