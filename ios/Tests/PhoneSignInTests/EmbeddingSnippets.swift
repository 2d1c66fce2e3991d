import AuthenticatorCore
import Foundation
import PhoneSignIn

// The Swift snippets of docs/EMBEDDING.md: compiled by `cargo xtask swift-test`, copied into the
// document by `cargo xtask bindings` (checked with --check).

// snippet:swift-setup
func openPhoneSignIn(appGroup: URL, keys: DeviceKeyStore) throws -> PhoneSignIn {
    try PhoneSignIn(dataDirectory: appGroup.appendingPathComponent("phonesignin"), keyStore: keys)
}
// end-snippet

// snippet:swift-enroll
func enrollFromQRCode(_ phone: PhoneSignIn, scannedLink: String, apnsToken: Data?) async throws -> String {
    let push = apnsToken.map { PhoneSignIn.apns(deviceToken: $0) } ?? PhoneSignIn.longPoll
    let account = try await phone.enroll(link: scannedLink, deviceName: "Bobby's iPhone", push: push)
    _ = try await phone.enablePhoneSignIn(accountId: account.accountId) // Face ID / passcode
    return account.accountId
}
// end-snippet

// snippet:swift-approve
/// Shows the request (app, location, account), asks the user for the number, answers.
func answer(_ phone: PhoneSignIn, _ request: PendingRequest, askNumber: (PendingRequest) async -> String?) async throws {
    let typed = await askNumber(request) // nil: the user tapped "Deny"
    do {
        if let typed {
            _ = try await phone.approve(request, typedNumber: typed)
        } else {
            _ = try await phone.deny(request)
        }
    } catch AuthenticatorError.WrongNumber(let attemptsLeft) {
        print("wrong number, \(attemptsLeft) attempt(s) left") // ask again
    } catch AuthenticatorError.UserCancelled {
        // the user dismissed Face ID: keep the request on screen
    } catch AuthenticatorError.VerificationFailed {
        // Face ID / passcode failed: nothing was signed
    } catch AuthenticatorError.VerificationUnavailable {
        // no Face ID or passcode is set up: ask the user to set one; nothing was signed
    }
}
// end-snippet

// snippet:swift-totp
/// Open with a secret store (`KeychainSecretStore()`) to keep offline-fallback codes.
func openWithFallback(appGroup: URL, keys: DeviceKeyStore, secrets: SecretStore) throws -> PhoneSignIn {
    try PhoneSignIn(dataDirectory: appGroup.appendingPathComponent("phonesignin"), keyStore: keys, secretStore: secrets)
}

/// When the phone cannot approve: the account's current code, which the user types on the sign-in page.
func fallbackCode(_ phone: PhoneSignIn, accountId: String) async throws -> String? {
    guard let totp = try await phone.totpAccounts().first(where: { $0.accountId == accountId }) else { return nil }
    let code = try await phone.totpCode(totp)
    return "\(code.code) (\(code.secondsRemaining) s left)"
}
// end-snippet

// snippet:swift-browser-listener
/// `active` true when the app becomes active, false when its background time ends (iOS then suspends it).
func browserListener(_ phone: PhoneSignIn, active: Bool) async -> Bool {
    guard active else {
        await phone.stopBrowserListener()
        return false
    }
    do {
        try await phone.startBrowserListener() // port 47813, unless the server was told another one
        return true
    } catch {
        return false // another app holds the port: phishing-resistant sign-ins cannot be approved here now
    }
}

/// Approves a request; one with a `browserOrigin` needs its sign-in page open on this device.
func approveOnThisDevice(_ phone: PhoneSignIn, _ request: PendingRequest, typed: String, show: (String) -> Void) async throws {
    do {
        _ = try await phone.approve(request, typedNumber: typed)
    } catch AuthenticatorError.BrowserNotSeen {
        show("Open the sign-in page on this device and let the browser allow it to reach apps on this device (Chrome: the site's “Apps on device” setting), then approve again.")
    } catch AuthenticatorError.BrowserOriginMismatch(let seenOrigin, let expectedOrigin) {
        show("Don't sign in: that page is at \(seenOrigin), not \(expectedOrigin). Someone may be relaying it.")
        // and offer "This wasn't me" → try await phone.reportFraud(request)
    }
}
// end-snippet

// snippet:swift-move
/// Old phone: the link to show as one QR code (to the new phone only: once, for ten minutes).
func startMove(_ phone: PhoneSignIn) async throws -> String {
    try await phone.moveOut().link // asks the user once per account
}

/// New phone: the scanned link. Returns what to tell the user.
func finishMove(_ phone: PhoneSignIn, scannedLink: String, push: PushRegistration) async throws -> String {
    do {
        let moved = try await phone.moveIn(link: scannedLink, deviceName: "Bobby's new iPhone", push: push)
        return "Moved \(moved.accounts.count) account(s) and \(moved.totpAccounts.count) code(s)"
    } catch AuthenticatorError.MoveAlreadyUsed {
        return "This code was used already: start a new move on the old phone"
    } catch AuthenticatorError.MoveExpired {
        return "This code expired: start a new move on the old phone"
    } catch AuthenticatorError.MoveVoucherRemoved {
        return "The old phone was removed from an account: start a new move"
    } catch AuthenticatorError.InvalidMoveLink {
        return "This is not a move code"
    }
}

/// Old phone, after the user chose: keep its accounts, or remove them (each server is told).
func afterMove(_ phone: PhoneSignIn, removeFromThisPhone: Bool) async throws {
    if removeFromThisPhone { try await phone.removeAllAccounts() }
}

/// Without the old phone: the TOTP accounts through a passphrase-encrypted file (never phone sign-in).
func restoreCodes(_ phone: PhoneSignIn, exportFile: String, passphrase: String) async throws -> Int? {
    do {
        return try await phone.importTotpAccounts(exportFile: exportFile, passphrase: passphrase).count
    } catch AuthenticatorError.WrongPassphrase {
        return nil // ask again
    }
}
// end-snippet
