#if canImport(Security) && os(iOS)
import AuthenticatorCore
import Foundation
import Security

/// P-256 keys in the Secure Enclave. Keys made with `requireUserVerification` can only sign after
/// Face ID / Touch ID of the currently enrolled biometrics (`.biometryCurrentSet`: a new
/// enrollment invalidates them); the system shows the prompt when `sign` uses such a key.
/// Hands the core the Secure Enclave's formats: the 65-byte SEC1 public key and X9.62 DER
/// signatures.
public final class SecureEnclaveKeyStore: DeviceKeyStore, @unchecked Sendable {
    private let tagPrefix: String

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
        let attributes: [String: Any] = [
            kSecAttrKeyType as String: kSecAttrKeyTypeECSECPrimeRandom,
            kSecAttrKeySizeInBits as String: 256,
            kSecAttrTokenID as String: kSecAttrTokenIDSecureEnclave,
            kSecPrivateKeyAttrs as String: [
                kSecAttrIsPermanent as String: true,
                kSecAttrApplicationTag as String: tag(alias),
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

    public func sign(alias: String, message: Data) async throws -> Data {
        let key = try privateKey(alias)
        var error: Unmanaged<CFError>?
        guard let signature = SecKeyCreateSignature(key, .ecdsaSignatureMessageX962SHA256, message as CFData, &error) as Data? else {
            let cfError = error?.takeRetainedValue()
            if let cfError, CFErrorGetCode(cfError) == -128 /* errSecUserCanceled */ {
                throw PlatformError.Cancelled
            }
            throw PlatformError.Failed(reason: "sign: \(String(describing: cfError))")
        }
        return signature
    }

    public func delete(alias: String) async throws {
        let query: [String: Any] = [kSecClass as String: kSecClassKey, kSecAttrApplicationTag as String: tag(alias)]
        let status = SecItemDelete(query as CFDictionary)
        if status == errSecItemNotFound { throw PlatformError.KeyNotFound }
        guard status == errSecSuccess else { throw PlatformError.Failed(reason: "delete: OSStatus \(status)") }
    }

    private func privateKey(_ alias: String) throws -> SecKey {
        let query: [String: Any] = [
            kSecClass as String: kSecClassKey,
            kSecAttrApplicationTag as String: tag(alias),
            kSecAttrKeyType as String: kSecAttrKeyTypeECSECPrimeRandom,
            kSecReturnRef as String: true,
        ]
        var item: CFTypeRef?
        let status = SecItemCopyMatching(query as CFDictionary, &item)
        if status == errSecItemNotFound { throw PlatformError.KeyNotFound }
        guard status == errSecSuccess, let item else { throw PlatformError.Failed(reason: "lookup: OSStatus \(status)") }
        return item as! SecKey // swiftlint:disable:this force_cast (kSecReturnRef of a kSecClassKey)
    }
}
#endif
