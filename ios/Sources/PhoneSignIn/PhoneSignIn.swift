import AuthenticatorCore
import Foundation

/// The app's handle on the phone sign-in core: one instance per process and data directory
/// (the app and its Notification Service Extension may each open the shared app-group directory).
///
/// Thin on purpose: every method is one call into the Rust core (`AuthenticatorCore`, generated);
/// the protocol, the number check and every signature live there. This type only adds platform
/// plumbing: the long wait of ``waitForRequests(waitSeconds:)`` ends when its `Task` is
/// cancelled, and APNs `userInfo` is handed over as JSON text.
///
/// User verification is part of the key store's `sign`: the core passes a prompt with every
/// approval signature (and with the one that enables phone sign-in), and the key store verifies
/// the user for that very signature (``SecureEnclaveKeyStore``: the Secure Enclave's own prompt
/// for the phone-sign-in key, a LocalAuthentication prompt before a device-key signature).
public final class PhoneSignIn: Sendable {
    /// The generated core object, for anything this facade does not wrap.
    public let core: Authenticator

    /// `secretStore` seals the TOTP secrets of the offline fallback at rest
    /// (``KeychainSecretStore`` on a device). Without one the TOTP methods throw
    /// `AuthenticatorError.SecretStoreUnavailable` and enrollments keep no TOTP secret.
    public init(dataDirectory: URL, keyStore: DeviceKeyStore, secretStore: SecretStore? = nil) throws {
        if let secretStore {
            core = try Authenticator.withSecretStore(
                dataDir: dataDirectory.path, keyStore: keyStore, secretStore: secretStore)
        } else {
            core = try Authenticator(dataDir: dataDirectory.path, keyStore: keyStore)
        }
    }

    /// No push service: the app calls ``waitForRequests(waitSeconds:)``.
    public static let longPoll = PushRegistration(kind: .longPoll, token: "")

    /// APNs: the device token as the hex text APNs documents.
    public static func apns(deviceToken: Data) -> PushRegistration {
        PushRegistration(kind: .apns, token: deviceToken.map { String(format: "%02x", $0) }.joined())
    }

    /// Enrolls this device from the registration QR code / link.
    public func enroll(link: String, deviceName: String, push: PushRegistration = PhoneSignIn.longPoll) async throws -> AccountSummary {
        try await core.enroll(enrollmentUrl: link, deviceName: deviceName, push: push)
    }

    public func accounts() async throws -> [AccountSummary] { try await core.accounts() }

    /// Creates the verification-bound key for the account and registers it (prompts the user
    /// once, for the new key's first signature).
    public func enablePhoneSignIn(accountId: String) async throws -> AccountSummary {
        try await core.enablePhoneSignIn(accountId: accountId)
    }

    /// Forgets the account on this device and deletes its keys (the server is not told).
    public func removeAccount(accountId: String) async throws {
        try await core.removeAccount(accountId: accountId)
    }

    /// APNs: hands the notification's `userInfo` to the core as JSON text; the core parses and
    /// verifies it. A payload that is not JSON-serializable is a typed `InvalidPushPayload`.
    /// `userInfo` is not `Sendable`: to handle the notification on another actor, make a
    /// ``RemoteNotification`` where it arrives and pass that.
    public func handleRemoteNotification(userInfo: [AnyHashable: Any]) async throws -> PushOutcome {
        try await handleRemoteNotification(RemoteNotification(userInfo: userInfo))
    }

    /// APNs: the notification as a `Sendable` value (see ``RemoteNotification``).
    public func handleRemoteNotification(_ notification: RemoteNotification) async throws -> PushOutcome {
        try await core.handlePushJson(payload: notification.json)
    }

    /// Without push: waits up to `waitSeconds` (capped at 60 by the core) for sign-in requests.
    /// Cancelling the calling `Task` ends the wait at once and throws `CancellationError`:
    /// uniffi 0.32's Swift bindings do not cancel a Rust future with its `Task` (Kotlin's do),
    /// so the cancellation handler calls the core's explicit `cancelPoll()`.
    public func waitForRequests(waitSeconds: UInt32 = 60) async throws -> [PendingRequest] {
        try Task.checkCancellation()
        let core = self.core
        let requests = try await withTaskCancellationHandler {
            try await core.poll(waitSeconds: waitSeconds)
        } onCancel: {
            core.cancelPoll()
        }
        try Task.checkCancellation()
        return requests
    }

    public func pendingRequests() async throws -> [PendingRequest] { try await core.pendingRequests() }

    /// Approves after user verification (the key store prompts for the signature);
    /// `typedNumber` is what the user typed. A request is identified by its account and its id.
    /// A dismissed prompt throws `AuthenticatorError.UserCancelled`, a failed one
    /// `.VerificationFailed`; either way nothing was signed and the request is still pending.
    public func approve(_ request: PendingRequest, typedNumber: String) async throws -> Decision {
        try await core.approve(accountId: request.accountId, requestId: request.requestId, typedNumber: typedNumber)
    }

    /// Denies; needs no verification.
    public func deny(_ request: PendingRequest) async throws -> Decision {
        try await core.deny(accountId: request.accountId, requestId: request.requestId)
    }

    /// "This wasn't me": denies and reports fraud; needs no verification.
    public func reportFraud(_ request: PendingRequest) async throws -> Decision {
        try await core.reportFraud(accountId: request.accountId, requestId: request.requestId)
    }

    /// The port sign-in pages post to (PROTOCOL.md §5.9) unless the deployment changed it
    /// (`signin-server serve --browser-listener-port`): the server's page and this app must agree
    /// on it, and nothing tells the app another one, so keep this unless told otherwise.
    public static let defaultBrowserListenerPort: UInt16 = 47813

    /// Phishing-resistant sign-in (PROTOCOL.md §5.9): listens on `127.0.0.1:port` for the
    /// sign-in pages open in a browser on this device, and returns the port it bound (0 picks a
    /// free one, for tests). A request whose `browserOrigin` is set can only be approved after
    /// its page announced itself here, and only at the server's own origin: the browser writes
    /// the page's origin itself, so a relayed (phished) page is told apart.
    ///
    /// iOS suspends an app seconds after it leaves the foreground, and a suspended listener
    /// answers nothing (the system may even reclaim its socket): call this every time the app
    /// becomes active, and ``stopBrowserListener()`` when its background time ends. Calling it
    /// again replaces the running listener. A port another app holds throws
    /// `AuthenticatorError.InvalidInput`.
    @discardableResult
    public func startBrowserListener(port: UInt16 = PhoneSignIn.defaultBrowserListenerPort) async throws -> UInt16 {
        try await core.startBrowserListener(port: port)
    }

    /// Stops the browser listener; does nothing when none runs. What it has seen is kept (15 min).
    public func stopBrowserListener() {
        core.stopBrowserListener()
    }

    /// Offline fallback: the TOTP accounts (each enrollment's, removed with its account, and
    /// imports). Show ``totpCode(_:)`` when the user cannot approve (no network): they type it
    /// on the sign-in page ("Use a verification code").
    public func totpAccounts() throws -> [TotpAccount] { try core.totpAccounts() }

    /// Adds a TOTP account from another service's `otpauth://totp/…` QR code.
    public func addTotpAccount(uri: String) async throws -> TotpAccount {
        try await core.addTotpAccount(uri: uri)
    }

    /// The current code (RFC 6238) and the seconds it stays valid; works offline.
    public func totpCode(_ account: TotpAccount) async throws -> TotpCode {
        try await core.totpCode(totpId: account.totpId)
    }

    public func removeTotpAccount(_ account: TotpAccount) throws {
        try core.removeTotpAccount(totpId: account.totpId)
    }

    /// Moving to a new phone, on the old phone (PROTOCOL.md §5.11): each account's server
    /// issues a move code this device vouches for (the user is asked once per account), and the
    /// TOTP accounts the user added travel encrypted under a one-time key. Show `link` as one
    /// QR code, to the new phone only: it works once, for ten minutes. Afterwards ask the user
    /// whether to keep this phone's accounts or ``removeAllAccounts()``.
    public func moveOut() async throws -> MoveOut { try await core.moveOut() }

    /// On the new phone, with the scanned move link: enrolls every account (active at once, and
    /// with phone sign-in where the old phone had it; the user is asked for each) and adds the
    /// TOTP accounts. Refusals: `.MoveAlreadyUsed`, `.MoveExpired`, `.MoveVoucherRemoved`,
    /// `.InvalidMoveLink`.
    public func moveIn(link: String, deviceName: String, push: PushRegistration = PhoneSignIn.longPoll) async throws -> MoveIn {
        try await core.moveIn(moveLink: link, deviceName: deviceName, push: push)
    }

    /// After a move, on the old phone: removes every account (each server is told) and TOTP
    /// account.
    public func removeAllAccounts() async throws { try await core.removeAllAccounts() }

    /// The TOTP accounts the user added as a passphrase-encrypted file (Argon2id, AES-256-GCM),
    /// for a new phone without the old one at hand. Never phone sign-in keys.
    public func exportTotpAccounts(passphrase: String) async throws -> String {
        try await core.exportTotpAccounts(passphrase: passphrase)
    }

    /// Adds the TOTP accounts of an export file: `.WrongPassphrase`, `.InvalidExportFile`.
    public func importTotpAccounts(exportFile: String, passphrase: String) async throws -> [TotpAccount] {
        try await core.importTotpAccounts(export: exportFile, passphrase: passphrase)
    }

    static func jsonText(_ userInfo: [AnyHashable: Any]) throws -> String {
        var object: [String: Any] = [:]
        for (key, value) in userInfo {
            guard let key = key as? String else {
                throw AuthenticatorError.InvalidPushPayload(reason: "a userInfo key is not a string")
            }
            object[key] = value
        }
        guard JSONSerialization.isValidJSONObject(object),
              let data = try? JSONSerialization.data(withJSONObject: object),
              let text = String(data: data, encoding: .utf8)
        else {
            throw AuthenticatorError.InvalidPushPayload(reason: "userInfo is not JSON")
        }
        return text
    }
}

/// An APNs notification's payload as a `Sendable` value. `userInfo` (`[AnyHashable: Any]`) may
/// not cross actors under Swift 6 strict concurrency; make this where the notification arrives
/// (the app delegate, the Notification Service Extension) and hand it to any actor or task.
public struct RemoteNotification: Sendable, Hashable {
    /// The payload as JSON text, which is what the core parses.
    public let json: String

    /// A `userInfo` that is not JSON-serializable (non-string keys, dates, data) is a typed
    /// `AuthenticatorError.InvalidPushPayload`, here rather than later on another actor.
    public init(userInfo: [AnyHashable: Any]) throws {
        json = try PhoneSignIn.jsonText(userInfo)
    }

    /// A payload already in JSON text (e.g. from a push library that hands over raw bytes).
    public init(json: String) {
        self.json = json
    }
}
