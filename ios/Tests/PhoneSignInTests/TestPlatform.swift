import AuthenticatorCore
import Foundation
#if canImport(CryptoKit)
import CryptoKit
#else
import COpenSSL
#endif

/// One signature the core asked for: the key, and the user-verification prompt it carried.
struct SignRequest: Equatable, Sendable {
    let alias: String
    let prompt: String?
}

/// How the scripted user answers a signature's prompt.
enum PromptAnswer: Sendable {
    /// Passes (Face ID / passcode): the key signs.
    case verified
    /// Dismisses the prompt: `PlatformError.Cancelled`, nothing signed.
    case cancelled
    /// Fails it (wrong face, lock-out): `PlatformError.VerificationFailed`, nothing signed.
    case failed
    /// No biometrics or passcode set up: `PlatformError.NotAvailable`, nothing signed.
    case notAvailable
    /// The prompt never returns, and ignores its task's cancellation (a hung system prompt).
    case hangs
}

/// The scripted platform: a Swift `DeviceKeyStore` that hands the core exactly the Secure
/// Enclave's formats — the 65-byte SEC1 public key (`SecKeyCopyExternalRepresentation`) and
/// X9.62 DER ECDSA signatures (`.ecdsaSignatureMessageX962SHA256`) — and, like
/// `SecureEnclaveKeyStore`, verifies the user for every signature that carries a prompt before
/// signing (the test chooses the answer with `answer`). A user-verification key refuses to sign
/// without a prompt, as the Secure Enclave store does. It records every signature asked for and
/// every one made. P-256 comes from CryptoKit on Apple platforms and from OpenSSL's libcrypto on
/// Linux.
final class EnclaveFormatKeyStore: DeviceKeyStore, @unchecked Sendable {
    private let lock = NSLock()
    private var keys: [String: P256Key] = [:]
    private var userVerificationKeys: Set<String> = []
    private var _publicKeys: [String: Data] = [:]
    private var _requests: [SignRequest] = []
    private var _signed: [String] = []
    private var _answer: PromptAnswer = .verified

    /// How the user answers the next prompts.
    var answer: PromptAnswer {
        get { lock.withLock { _answer } }
        set { lock.withLock { _answer = newValue } }
    }

    func generate(alias: String, requireUserVerification: Bool) async throws -> Data {
        let key = try P256Key()
        let sec1 = try key.publicKeySEC1()
        lock.withLock {
            keys[alias] = key
            _publicKeys[alias] = sec1
            if requireUserVerification { userVerificationKeys.insert(alias) }
        }
        return sec1
    }

    func sign(alias: String, message: Data, prompt: String?) async throws -> Data {
        let hangs = lock.withLock { prompt != nil && _answer == .hangs && keys[alias] != nil }
        if hangs {
            lock.withLock { _requests.append(SignRequest(alias: alias, prompt: prompt)) }
            await withUnsafeContinuation { (_: UnsafeContinuation<Void, Never>) in }
        }
        let key = try lock.withLock { () throws -> P256Key in
            _requests.append(SignRequest(alias: alias, prompt: prompt))
            guard let key = keys[alias] else { throw PlatformError.KeyNotFound }
            if prompt != nil {
                switch _answer {
                case .verified: break
                case .cancelled: throw PlatformError.Cancelled
                case .failed: throw PlatformError.VerificationFailed
                case .notAvailable: throw PlatformError.NotAvailable
                case .hangs: throw PlatformError.Failed(reason: "unreachable: a hung prompt never returns")
                }
            } else if userVerificationKeys.contains(alias) {
                throw PlatformError.Failed(reason: "the user-verification key signs only with a prompt")
            }
            _signed.append(alias)
            return key
        }
        return try key.signDER(message)
    }

    func delete(alias: String) async throws {
        try lock.withLock {
            guard keys.removeValue(forKey: alias) != nil else { throw PlatformError.KeyNotFound }
            userVerificationKeys.remove(alias)
        }
    }

    /// Every signature asked for, made or refused, in order.
    var requests: [SignRequest] { lock.withLock { _requests } }
    /// The prompts shown, in order.
    var prompts: [String] { requests.compactMap(\.prompt) }
    /// Forgets the signatures asked for so far.
    func clearRequests() { lock.withLock { _requests.removeAll() } }
    /// Every alias that actually signed, in order.
    var signed: [String] { lock.withLock { _signed } }
    var signatureCount: Int { lock.withLock { _signed.count } }
    var allPublicKeys: [Data] { lock.withLock { Array(_publicKeys.values) } }
    /// The aliases of the keys that still exist.
    var aliases: Set<String> { lock.withLock { Set(keys.keys) } }
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
