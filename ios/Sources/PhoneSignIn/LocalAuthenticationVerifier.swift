#if canImport(LocalAuthentication)
import AuthenticatorCore
import Foundation
import LocalAuthentication

/// User verification with Face ID / Touch ID, falling back to the device passcode.
public final class LocalAuthenticationVerifier: UserVerifier, @unchecked Sendable {
    public init() {}

    public func verify(reason: String) async throws -> VerificationOutcome {
        let context = LAContext()
        var error: NSError?
        guard context.canEvaluatePolicy(.deviceOwnerAuthentication, error: &error) else {
            throw PlatformError.NotAvailable
        }
        do {
            return try await context.evaluatePolicy(.deviceOwnerAuthentication, localizedReason: reason) ? .verified : .denied
        } catch let e as LAError where [.userCancel, .appCancel, .systemCancel].contains(e.code) {
            return .cancelled
        } catch let e as LAError where [.authenticationFailed, .biometryLockout].contains(e.code) {
            return .denied
        }
    }
}
#endif
