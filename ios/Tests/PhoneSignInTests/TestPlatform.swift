import AuthenticatorCore
import Foundation
#if canImport(CryptoKit)
import CryptoKit
#else
import COpenSSL
#endif

/// A Swift `DeviceKeyStore` that hands the core exactly the Secure Enclave's formats: the 65-byte
/// SEC1 public key (`SecKeyCopyExternalRepresentation`) and X9.62 DER ECDSA signatures
/// (`.ecdsaSignatureMessageX962SHA256`). P-256 comes from CryptoKit on Apple platforms and from
/// OpenSSL's libcrypto on Linux.
final class EnclaveFormatKeyStore: DeviceKeyStore, @unchecked Sendable {
    private let lock = NSLock()
    private var keys: [String: P256Key] = [:]
    private(set) var publicKeys: [String: Data] = [:]
    private(set) var signed: [String] = []

    func generate(alias: String, requireUserVerification: Bool) async throws -> Data {
        let key = try P256Key()
        let sec1 = try key.publicKeySEC1()
        lock.withLock {
            keys[alias] = key
            publicKeys[alias] = sec1
        }
        return sec1
    }

    func sign(alias: String, message: Data) async throws -> Data {
        let key = try lock.withLock { () throws -> P256Key in
            guard let key = keys[alias] else { throw PlatformError.KeyNotFound }
            signed.append(alias)
            return key
        }
        return try key.signDER(message)
    }

    func delete(alias: String) async throws {
        try lock.withLock {
            guard keys.removeValue(forKey: alias) != nil else { throw PlatformError.KeyNotFound }
        }
    }

    var signatureCount: Int { lock.withLock { signed.count } }
    var allPublicKeys: [Data] { lock.withLock { Array(publicKeys.values) } }
}

/// A user-verification prompt whose answer the test chooses.
final class ScriptedVerifier: UserVerifier, @unchecked Sendable {
    private let lock = NSLock()
    private var _outcome: VerificationOutcome = .verified
    private(set) var prompts = 0
    var outcome: VerificationOutcome {
        get { lock.withLock { _outcome } }
        set { lock.withLock { _outcome = newValue } }
    }

    func verify(reason: String) async throws -> VerificationOutcome {
        lock.withLock {
            prompts += 1
            return _outcome
        }
    }
}

struct CryptoFailure: Error { let what: String }

#if canImport(CryptoKit)
final class P256Key: @unchecked Sendable {
    private let key = P256.Signing.PrivateKey()
    init() throws {}
    func publicKeySEC1() throws -> Data { key.publicKey.x963Representation }
    func signDER(_ message: Data) throws -> Data { try key.signature(for: message).derRepresentation }
}
#else
/// P-256 through OpenSSL 3's EVP interface.
final class P256Key: @unchecked Sendable {
    private let pkey: OpaquePointer

    init() throws {
        guard let ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, nil) else { throw CryptoFailure(what: "ctx") }
        defer { EVP_PKEY_CTX_free(ctx) }
        var key: OpaquePointer?
        guard EVP_PKEY_keygen_init(ctx) == 1,
              EVP_PKEY_CTX_set_ec_paramgen_curve_nid(ctx, NID_X9_62_prime256v1) == 1,
              EVP_PKEY_keygen(ctx, &key) == 1, let key
        else { throw CryptoFailure(what: "keygen") }
        pkey = key
    }

    deinit { EVP_PKEY_free(pkey) }

    /// Uncompressed point 0x04 || X || Y.
    func publicKeySEC1() throws -> Data {
        var buffer: UnsafeMutablePointer<UInt8>?
        let length = EVP_PKEY_get1_encoded_public_key(pkey, &buffer)
        guard length > 0, let buffer else { throw CryptoFailure(what: "public key") }
        defer { CRYPTO_free(buffer, nil, 0) }
        return Data(bytes: buffer, count: length)
    }

    /// ECDSA P-256 / SHA-256 over `message`, X9.62 DER.
    func signDER(_ message: Data) throws -> Data {
        guard let md = EVP_MD_CTX_new() else { throw CryptoFailure(what: "md ctx") }
        defer { EVP_MD_CTX_free(md) }
        guard EVP_DigestSignInit(md, nil, EVP_sha256(), nil, pkey) == 1 else { throw CryptoFailure(what: "sign init") }
        var length = 0
        let bytes = [UInt8](message)
        guard EVP_DigestSign(md, nil, &length, bytes, bytes.count) == 1 else { throw CryptoFailure(what: "sign size") }
        var signature = [UInt8](repeating: 0, count: length)
        guard EVP_DigestSign(md, &signature, &length, bytes, bytes.count) == 1 else { throw CryptoFailure(what: "sign") }
        return Data(signature.prefix(length))
    }
}
#endif
