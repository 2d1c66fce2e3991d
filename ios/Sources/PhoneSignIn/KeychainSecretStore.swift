#if canImport(CryptoKit) && canImport(Security) && os(iOS)
import AuthenticatorCore
import CryptoKit
import Foundation
import Security

/// The core's `SecretStore` on iOS: AES-256-GCM (CryptoKit) under a random key kept in the
/// Keychain (`kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly`: readable by the Notification
/// Service Extension after the first unlock, never in backups or on another device), created on
/// first use. The context the core passes is the associated data, so a sealed secret opens only
/// for the account it was sealed for. No user authentication: TOTP codes must show without a
/// prompt.
///
/// A sealed value is CryptoKit's combined `nonce || ciphertext || tag`. Give `accessGroup` (the
/// app group's keychain group) when the app and its extension share the data directory.
public final class KeychainSecretStore: SecretStore, @unchecked Sendable {
    private let service: String
    private let accessGroup: String?
    private let lock = NSLock()

    public init(service: String = "org.phonesignin.secrets", accessGroup: String? = nil) {
        self.service = service
        self.accessGroup = accessGroup
    }

    private func query() -> [String: Any] {
        var q: [String: Any] = [
            kSecClass as String: kSecClassGenericPassword,
            kSecAttrService as String: service,
            kSecAttrAccount as String: "sealing-key",
        ]
        if let accessGroup { q[kSecAttrAccessGroup as String] = accessGroup }
        return q
    }

    private func key() throws -> SymmetricKey {
        lock.lock()
        defer { lock.unlock() }
        var read = query()
        read[kSecReturnData as String] = true
        var item: CFTypeRef?
        let status = SecItemCopyMatching(read as CFDictionary, &item)
        if status == errSecSuccess, let data = item as? Data, data.count == 32 {
            return SymmetricKey(data: data)
        }
        guard status == errSecItemNotFound else {
            throw PlatformError.Failed(reason: "keychain read failed (\(status))")
        }
        let key = SymmetricKey(size: .bits256)
        var add = query()
        add[kSecValueData as String] = key.withUnsafeBytes { Data($0) }
        add[kSecAttrAccessible as String] = kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly
        let added = SecItemAdd(add as CFDictionary, nil)
        guard added == errSecSuccess else {
            throw PlatformError.Failed(reason: "keychain write failed (\(added))")
        }
        return key
    }

    public func seal(context: String, plaintext: Data) async throws -> Data {
        do {
            let box = try AES.GCM.seal(plaintext, using: try key(), authenticating: Data(context.utf8))
            guard let combined = box.combined else { throw PlatformError.Failed(reason: "sealing failed") }
            return combined
        } catch let e as PlatformError {
            throw e
        } catch {
            throw PlatformError.Failed(reason: "sealing failed")
        }
    }

    public func unseal(context: String, sealed: Data) async throws -> Data {
        do {
            let box = try AES.GCM.SealedBox(combined: sealed)
            return try AES.GCM.open(box, using: try key(), authenticating: Data(context.utf8))
        } catch let e as PlatformError {
            throw e
        } catch {
            // Another context, a changed byte, or a deleted Keychain key.
            throw PlatformError.Failed(reason: "unsealing failed")
        }
    }
}
#endif
