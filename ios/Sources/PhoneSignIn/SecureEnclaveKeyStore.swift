#if canImport(Security) && os(iOS)
import AuthenticatorCore
import Foundation
import LocalAuthentication
import Security

/// P-256 keys in the Secure Enclave, and the user verification the core asks for with a
/// signature (`DeviceKeyStore.sign(alias:message:prompt:)`).
///
/// - A key made with `requireUserVerification` (the phone-sign-in key) can only sign after
///   Face ID / Touch ID of the currently enrolled biometrics (`.biometryCurrentSet`: a new
///   enrollment invalidates it). Its signature with a prompt looks the key up with an
///   `LAContext` whose `localizedReason` is the prompt, so the Secure Enclave's own prompt shows
///   the core's reason, once. The core never asks it for a signature without a prompt; such a
///   call is refused.
/// - A device key signs without UI. When the core passes a prompt (an approval answered with the
///   device key), the user is verified first with LocalAuthentication
///   (`.deviceOwnerAuthentication`: biometrics or the device passcode), with the prompt as the
///   reason, and nothing is signed unless that passes.
///
/// Refusals are the core's `PlatformError`s: a dismissed prompt is `Cancelled`, a failed one
/// (wrong biometric, lock-out) `VerificationFailed`, no passcode / biometrics set up
/// `NotAvailable`.
///
/// Hands the core the Secure Enclave's formats: the 65-byte SEC1 public key and X9.62 DER
/// signatures.
public final class SecureEnclaveKeyStore: DeviceKeyStore, @unchecked Sendable {
    private let tagPrefix: String

    /// What a key requires before it signs, stored as the private key's `kSecAttrLabel` at
    /// creation and read back (`kSecReturnAttributes`) at each signature.
    private enum Kind: String {
        case userVerification = "user-verification"
        case device = "device"
    }

    public init(tagPrefix: String = "org.phonesignin.key.") {
        self.tagPrefix = tagPrefix
    }

    private func tag(_ alias: String) -> Data { Data((tagPrefix + alias).utf8) }

    public func generate(alias: String, requireUserVerification: Bool) async throws -> Data {
        var error: Unmanaged<CFError>?
        let flags: SecAccessControlCreateFlags = requireUserVerification ? [.privateKeyUsage, .biometryCurrentSet] : [.privateKeyUsage]
        guard let access = SecAccessControlCreateWithFlags(nil, kSecAttrAccessibleWhenUnlockedThisDeviceOnly, flags, &error) else {
            throw PlatformError.Failed(reason: "access control: \(String(describing: error?.takeRetainedValue()))")
        }
        let kind: Kind = requireUserVerification ? .userVerification : .device
        let attributes: [String: Any] = [
            kSecAttrKeyType as String: kSecAttrKeyTypeECSECPrimeRandom,
            kSecAttrKeySizeInBits as String: 256,
            kSecAttrTokenID as String: kSecAttrTokenIDSecureEnclave,
            kSecPrivateKeyAttrs as String: [
                kSecAttrIsPermanent as String: true,
                kSecAttrApplicationTag as String: tag(alias),
                kSecAttrLabel as String: kind.rawValue,
                kSecAttrAccessControl as String: access,
            ] as [String: Any],
        ]
        guard let key = SecKeyCreateRandomKey(attributes as CFDictionary, &error) else {
            throw PlatformError.NotAvailable
        }
        guard let publicKey = SecKeyCopyPublicKey(key),
              let sec1 = SecKeyCopyExternalRepresentation(publicKey, &error) as Data?
        else {
            throw PlatformError.Failed(reason: "public key: \(String(describing: error?.takeRetainedValue()))")
        }
        return sec1 // 0x04 || X || Y, 65 bytes
    }

    public func sign(alias: String, message: Data, prompt: String?) async throws -> Data {
        let kind = try keyKind(alias)
        switch (kind, prompt) {
        case (.userVerification, nil):
            // The core passes a prompt with every signature of this key; signing without one
            // would show the system prompt with no reason the user can read.
            throw PlatformError.Failed(reason: "the user-verification key signs only with a prompt")
        case let (.userVerification, reason?):
            // The Secure Enclave's own prompt (the key's access control), with the core's reason.
            return try await signOnQueue(alias: alias, message: message, reason: reason)
        case let (.device, reason?):
            try await verifyUser(reason: reason)
            return try await signOnQueue(alias: alias, message: message, reason: nil)
        case (.device, nil):
            return try await signOnQueue(alias: alias, message: message, reason: nil)
        }
    }

    public func delete(alias: String) async throws {
        let query: [String: Any] = [kSecClass as String: kSecClassKey, kSecAttrApplicationTag as String: tag(alias)]
        let status = SecItemDelete(query as CFDictionary)
        if status == errSecItemNotFound { throw PlatformError.KeyNotFound }
        guard status == errSecSuccess else { throw PlatformError.Failed(reason: "delete: OSStatus \(status)") }
    }

    // MARK: - Signing

    /// `SecKeyCreateSignature` blocks while the system prompt is up (the user may take their
    /// time), so it runs on a dispatch queue, not on a Swift concurrency thread.
    private func signOnQueue(alias: String, message: Data, reason: String?) async throws -> Data {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Data, Error>) in
            DispatchQueue.global(qos: .userInitiated).async {
                continuation.resume(with: Result { try self.signNow(alias: alias, message: message, reason: reason) })
            }
        }
    }

    /// Looks the key up (with an authentication context carrying `reason` when the key's own
    /// prompt is to show it) and signs.
    private func signNow(alias: String, message: Data, reason: String?) throws -> Data {
        var context: LAContext?
        if let reason {
            let laContext = LAContext()
            laContext.localizedReason = reason
            // Biometrics must be usable, else the Secure Enclave can only fail: say why.
            var canError: NSError?
            if !laContext.canEvaluatePolicy(.deviceOwnerAuthenticationWithBiometrics, error: &canError) {
                throw Self.refusal(canError)
            }
            context = laContext
        }
        let key = try privateKey(alias, context: context)
        var error: Unmanaged<CFError>?
        guard let signature = SecKeyCreateSignature(key, .ecdsaSignatureMessageX962SHA256, message as CFData, &error) as Data? else {
            throw Self.refusal(error?.takeRetainedValue())
        }
        return signature
    }

    // MARK: - User verification (device key with a prompt)

    /// Face ID / Touch ID or the device passcode, with `reason` shown; throws unless the user passed.
    private func verifyUser(reason: String) async throws {
        let context = LAContext()
        var canError: NSError?
        guard context.canEvaluatePolicy(.deviceOwnerAuthentication, error: &canError) else {
            throw Self.refusal(canError)
        }
        let passed: Bool
        do {
            passed = try await context.evaluatePolicy(.deviceOwnerAuthentication, localizedReason: reason)
        } catch let error as LAError {
            throw Self.refusal(error.code)
        }
        guard passed else { throw PlatformError.VerificationFailed }
    }

    /// The core's reading of a LocalAuthentication answer.
    private static func refusal(_ code: LAError.Code) -> PlatformError {
        switch code {
        case .userCancel, .appCancel, .systemCancel, .userFallback:
            return .Cancelled
        case .authenticationFailed, .biometryLockout:
            return .VerificationFailed
        case .passcodeNotSet, .biometryNotAvailable, .biometryNotEnrolled:
            return .NotAvailable
        default:
            return .Failed(reason: "LocalAuthentication error \(code.rawValue)")
        }
    }

    /// The core's reading of an error from LocalAuthentication or the Security framework.
    private static func refusal(_ error: Error?) -> PlatformError {
        guard let error else { return .Failed(reason: "unknown error") }
        let nsError = error as NSError
        if nsError.domain == LAErrorDomain, let code = LAError.Code(rawValue: nsError.code) {
            return refusal(code)
        }
        if nsError.domain == NSOSStatusErrorDomain {
            switch OSStatus(truncatingIfNeeded: nsError.code) {
            case errSecUserCanceled: // -128: the Secure Enclave's prompt was dismissed
                return .Cancelled
            case errSecAuthFailed: // -25293: the user did not pass
                return .VerificationFailed
            default:
                break
            }
        }
        // The Security framework may wrap the LocalAuthentication answer.
        if let underlying = nsError.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == LAErrorDomain,
           let code = LAError.Code(rawValue: underlying.code) {
            return refusal(code)
        }
        return .Failed(reason: "sign: \(nsError)")
    }

    // MARK: - Keychain

    /// What the key requires before it signs. A key without the label (made by an older
    /// version) is treated as a device key: a prompt is then verified before signing, and a
    /// key with its own access control may prompt once more — never a signature without
    /// verification.
    private func keyKind(_ alias: String) throws -> Kind {
        var query = baseQuery(alias)
        query[kSecReturnAttributes as String] = true
        var item: CFTypeRef?
        let status = SecItemCopyMatching(query as CFDictionary, &item)
        if status == errSecItemNotFound { throw PlatformError.KeyNotFound }
        guard status == errSecSuccess, let attributes = item as? [String: Any] else {
            throw PlatformError.Failed(reason: "lookup: OSStatus \(status)")
        }
        return (attributes[kSecAttrLabel as String] as? String).flatMap(Kind.init(rawValue:)) ?? .device
    }

    /// The private key, bound to `context` when given (`kSecUseAuthenticationContext`): the
    /// Secure Enclave's prompt for this key then shows the context's `localizedReason`.
    private func privateKey(_ alias: String, context: LAContext?) throws -> SecKey {
        var query = baseQuery(alias)
        query[kSecReturnRef as String] = true
        if let context {
            query[kSecUseAuthenticationContext as String] = context
        }
        var item: CFTypeRef?
        let status = SecItemCopyMatching(query as CFDictionary, &item)
        if status == errSecItemNotFound { throw PlatformError.KeyNotFound }
        guard status == errSecSuccess, let item, CFGetTypeID(item) == SecKeyGetTypeID() else {
            throw PlatformError.Failed(reason: "lookup: OSStatus \(status)")
        }
        return item as! SecKey // swiftlint:disable:this force_cast (type checked above)
    }

    private func baseQuery(_ alias: String) -> [String: Any] {
        [
            kSecClass as String: kSecClassKey,
            kSecAttrApplicationTag as String: tag(alias),
            kSecAttrKeyType as String: kSecAttrKeyTypeECSECPrimeRandom,
            kSecAttrKeyClass as String: kSecAttrKeyClassPrivate,
        ]
    }
}
#endif
