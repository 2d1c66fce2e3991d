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

    /// Cancels the prompt of an approval whose `Task` is cancelled (see ``approve(_:typedNumber:)``).
    private let prompts: CancellablePrompts

    /// `dataDirectory` must be an absolute file URL (an app-group or Application Support
    /// folder): a relative one, such as `URL(fileURLWithPath: "")`, would put the database in
    /// whatever the working directory is, so it throws `AuthenticatorError.InvalidInput`.
    ///
    /// `secretStore` seals the TOTP secrets of the offline fallback at rest
    /// (``KeychainSecretStore`` on a device). Without one the TOTP methods throw
    /// `AuthenticatorError.SecretStoreUnavailable` and enrollments keep no TOTP secret.
    public init(dataDirectory: URL, keyStore: DeviceKeyStore, secretStore: SecretStore? = nil) throws {
        let path = try PhoneSignIn.dataPath(dataDirectory)
        let prompts = CancellablePrompts(keyStore)
        self.prompts = prompts
        if let secretStore {
            core = try Authenticator.withSecretStore(
                dataDir: path, keyStore: prompts, secretStore: secretStore)
        } else {
            core = try Authenticator(dataDir: path, keyStore: prompts)
        }
    }

    /// The path of an absolute file URL; anything else is `InvalidInput`.
    static func dataPath(_ url: URL) throws -> String {
        guard url.isFileURL else {
            throw AuthenticatorError.InvalidInput(reason: "the data directory is not a file URL")
        }
        // `URL(fileURLWithPath:)` of a relative path (also "") is relative to the working
        // directory: it has a base URL, and its relative path is what the caller wrote.
        guard url.baseURL == nil, url.relativePath.hasPrefix("/") else {
            throw AuthenticatorError.InvalidInput(
                reason: "the data directory must be an absolute path, not \"\(url.relativePath)\"")
        }
        return url.path
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

    /// The push registration changed: call with ``apns(deviceToken:)`` from
    /// `application(_:didRegisterForRemoteNotificationsWithDeviceToken:)` whenever APNs hands a
    /// token other than the one enrolled (after a restore or reinstall). Tells every account's
    /// server, signed by each account's device key (PROTOCOL.md §5.10); one result per account.
    /// Call again later (e.g. at the next start) for the accounts whose outcome is `.retryLater`.
    public func updatePushRegistration(_ push: PushRegistration) async throws -> [PushUpdateResult] {
        try await core.updatePushRegistration(push: push)
    }

    public func accounts() async throws -> [AccountSummary] { try await core.accounts() }

    /// Creates the verification-bound key for the account and registers it (prompts the user
    /// once, for the new key's first signature).
    /// Cancelling the calling `Task` cancels the prompt, as for ``approve(_:typedNumber:)``.
    public func enablePhoneSignIn(accountId: String) async throws -> AccountSummary {
        try await prompting { try await $0.enablePhoneSignIn(accountId: accountId) }
    }

    /// Removes the account from this device, deletes its keys and tells its server (the device is
    /// removed there too; a server that cannot be reached is told before later polls, enrollments
    /// and removals).
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
    /// `.VerificationFailed`, no biometric or passcode set up `.VerificationUnavailable`; either
    /// way nothing was signed and the request is still pending.
    ///
    /// Cancelling the calling `Task` (the user left the screen) ends the approval at once with
    /// `CancellationError`, even while the key store's prompt hangs: uniffi 0.32's Swift bindings
    /// do not cancel a Rust future with its `Task`, so this facade answers the pending prompt
    /// itself as `PlatformError.Cancelled` (and cancels the key store's own task, so a
    /// LocalAuthentication prompt can be invalidated). Nothing is signed; the request stays
    /// pending and can be approved again.
    public func approve(_ request: PendingRequest, typedNumber: String) async throws -> Decision {
        try await prompting {
            try await $0.approve(accountId: request.accountId, requestId: request.requestId, typedNumber: typedNumber)
        }
    }

    /// Runs a call that may prompt; a cancelled `Task` cancels the prompt and throws `CancellationError`.
    private func prompting<T: Sendable>(_ call: @Sendable (Authenticator) async throws -> T) async throws -> T {
        try Task.checkCancellation()
        let core = self.core
        let prompts = self.prompts
        do {
            return try await withTaskCancellationHandler {
                try await call(core)
            } onCancel: {
                prompts.cancelAll()
            }
        } catch AuthenticatorError.UserCancelled where Task.isCancelled {
            throw CancellationError()
        }
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
    public func stopBrowserListener() async {
        await core.stopBrowserListener()
    }

    /// Offline fallback: the TOTP accounts (each enrollment's, removed with its account, and
    /// imports). Show ``totpCode(_:)`` when the user cannot approve (no network): they type it
    /// on the sign-in page ("Use a verification code").
    public func totpAccounts() async throws -> [TotpAccount] { try await core.totpAccounts() }

    /// Adds a TOTP account from another service's `otpauth://totp/…` QR code.
    public func addTotpAccount(uri: String) async throws -> TotpAccount {
        try await core.addTotpAccount(uri: uri)
    }

    /// The current code (RFC 6238) and the seconds it stays valid; works offline.
    public func totpCode(_ account: TotpAccount) async throws -> TotpCode {
        try await core.totpCode(totpId: account.totpId)
    }

    public func removeTotpAccount(_ account: TotpAccount) async throws {
        try await core.removeTotpAccount(totpId: account.totpId)
    }

    /// Moving to a new phone, on the old phone (PROTOCOL.md §5.11): each account's server
    /// issues a move code this device vouches for (the user is asked once per account), and the
    /// TOTP accounts the user added travel encrypted under a one-time key. Show `link` as one
    /// QR code, to the new phone only: it works once, for ten minutes. Afterwards ask the user
    /// whether to keep this phone's accounts or ``removeAllAccounts()``.
    /// Cancelling the calling `Task` cancels the prompt, as for ``approve(_:typedNumber:)``.
    public func moveOut() async throws -> MoveOut { try await prompting { try await $0.moveOut() } }

    /// On the new phone, with the scanned move link: enrolls every account (active at once, and
    /// with phone sign-in where the old phone had it; the user is asked for each) and adds the
    /// TOTP accounts. Refusals: `.MoveAlreadyUsed`, `.MoveExpired`, `.MoveVoucherRemoved`,
    /// `.InvalidMoveLink`. Cancelling the calling `Task` cancels the prompt in progress.
    public func moveIn(link: String, deviceName: String, push: PushRegistration = PhoneSignIn.longPoll) async throws -> MoveIn {
        try await prompting { try await $0.moveIn(moveLink: link, deviceName: deviceName, push: push) }
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

/// The app's key store, with the prompts in progress cancellable: ``PhoneSignIn`` hands this to
/// the core. A signature without a prompt goes straight through. One with a prompt runs the app's
/// `sign` in its own `Task`; ``cancelAll()`` cancels those tasks and answers their signatures
/// at once as `PlatformError.Cancelled`, whether or not the app's prompt returns.
final class CancellablePrompts: DeviceKeyStore, @unchecked Sendable {
    private let inner: DeviceKeyStore
    private let lock = NSLock()
    private var next: UInt64 = 0
    private var waiting: [UInt64: (CheckedContinuation<Data, Error>, Task<Void, Never>?)] = [:]

    init(_ inner: DeviceKeyStore) { self.inner = inner }

    func generate(alias: String, requireUserVerification: Bool) async throws -> Data {
        try await inner.generate(alias: alias, requireUserVerification: requireUserVerification)
    }

    func delete(alias: String) async throws { try await inner.delete(alias: alias) }

    func sign(alias: String, message: Data, prompt: String?) async throws -> Data {
        guard prompt != nil else { return try await inner.sign(alias: alias, message: message, prompt: prompt) }
        let inner = self.inner
        return try await withCheckedThrowingContinuation { continuation in
            let id: UInt64 = lock.withLock {
                next += 1
                waiting[next] = (continuation, nil)
                return next
            }
            // Registered before it starts, so its answer always finds the continuation unless
            // cancelAll answered first.
            let task = Task {
                let result: Result<Data, Error>
                do { result = .success(try await inner.sign(alias: alias, message: message, prompt: prompt)) }
                catch { result = .failure(error) }
                self.finish(id, result)
            }
            lock.withLock {
                if waiting[id] != nil { waiting[id]?.1 = task } else { task.cancel() }
            }
        }
    }

    private func finish(_ id: UInt64, _ result: Result<Data, Error>) {
        let entry = lock.withLock { waiting.removeValue(forKey: id) }
        entry?.0.resume(with: result)
    }

    /// Answers every signature whose prompt is in progress as `Cancelled`, and cancels the app's
    /// tasks behind them.
    func cancelAll() {
        let all = lock.withLock { () -> [(CheckedContinuation<Data, Error>, Task<Void, Never>?)] in
            let all = Array(waiting.values)
            waiting.removeAll()
            return all
        }
        for (continuation, task) in all {
            task?.cancel()
            continuation.resume(throwing: PlatformError.Cancelled)
        }
    }
}
