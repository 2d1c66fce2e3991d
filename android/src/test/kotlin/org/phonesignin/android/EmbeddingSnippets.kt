package org.phonesignin.android

import org.phonesignin.core.AuthenticatorException
import org.phonesignin.core.DeviceKeyStore
import org.phonesignin.core.PendingRequest
import org.phonesignin.core.SecretStore

// The Kotlin snippets of docs/EMBEDDING.md: compiled with -Werror by `cargo xtask kotlin-test`,
// copied into the document by `cargo xtask bindings` (checked with --check).

// snippet:kotlin-setup
/** [keys]: `AndroidKeystoreKeyStore(context, prompter)`, which prompts for approvals itself. */
fun openPhoneSignIn(filesDir: String, keys: DeviceKeyStore): PhoneSignIn =
    PhoneSignIn("$filesDir/phonesignin", keys)
// end-snippet

// snippet:kotlin-enroll
suspend fun enrollFromQrCode(phone: PhoneSignIn, scannedLink: String, fcmToken: String?): String {
    val push = if (fcmToken != null) PhoneSignIn.fcm(fcmToken) else PhoneSignIn.LONG_POLL
    val account = phone.enroll(scannedLink, deviceName = "Bobby's Pixel", push = push)
    phone.enablePhoneSignIn(account.accountId) // asks for biometrics / device credential
    return account.accountId
}
// end-snippet

// snippet:kotlin-approve
/** Shows the request (app, location, account), asks the user for the number, answers. */
suspend fun answer(phone: PhoneSignIn, request: PendingRequest, askNumber: suspend (PendingRequest) -> String?) {
    val typed = askNumber(request) // null: the user tapped "Deny"
    try {
        if (typed == null) phone.deny(request) else phone.approve(request, typed)
    } catch (e: AuthenticatorException.WrongNumber) {
        // show "wrong number, ${e.attemptsLeft} attempt(s) left" and ask again
    } catch (e: AuthenticatorException.UserCancelled) {
        // the user dismissed the biometric prompt: keep the request on screen
    } catch (e: AuthenticatorException.VerificationFailed) {
        // biometric / device credential failed: nothing was signed
    } catch (e: AuthenticatorException.VerificationUnavailable) {
        // no biometric or screen lock is set up: ask the user to set one; nothing was signed
    } catch (e: AuthenticatorException.RequestExpired) {
        // tell the user the sign-in timed out
    }
}
// end-snippet

// snippet:kotlin-totp
/** Open with a secret store ([secrets]: `AndroidKeystoreSecretStore()`) to keep offline-fallback codes. */
fun openWithFallback(filesDir: String, keys: DeviceKeyStore, secrets: SecretStore): PhoneSignIn =
    PhoneSignIn("$filesDir/phonesignin", keys, secrets)

/** When the phone cannot approve: the account's current code, which the user types on the sign-in page. */
suspend fun fallbackCode(phone: PhoneSignIn, accountId: String): String? {
    val totp = phone.totpAccounts().firstOrNull { it.accountId == accountId } ?: return null
    val code = phone.totpCode(totp)
    return "${code.code} (${code.secondsRemaining} s left)"
}
// end-snippet

// snippet:kotlin-browser-listener
/** From a `ProcessLifecycleOwner` observer's `onStart`, and from a foreground service while a sign-in waits. */
suspend fun listenForSignInPages(phone: PhoneSignIn): Boolean =
    try {
        phone.startBrowserListener() // port 47813, unless the server was told another one
        true
    } catch (e: AuthenticatorException.InvalidInput) {
        false // another app holds the port: phishing-resistant sign-ins cannot be approved here now
    }

/** Approves a request; one with [PendingRequest.browserOrigin] needs its sign-in page open on this device. */
suspend fun approveOnThisDevice(phone: PhoneSignIn, request: PendingRequest, typed: String, show: (String) -> Unit) {
    try {
        phone.approve(request, typed)
    } catch (e: AuthenticatorException.BrowserNotSeen) {
        show("Open the sign-in page on this device and let the browser allow it to reach apps on this device (Chrome: the site's “Apps on device” setting), then approve again.")
    } catch (e: AuthenticatorException.BrowserOriginMismatch) {
        show("Don't sign in: that page is at ${e.seenOrigin}, not ${e.expectedOrigin}. Someone may be relaying it.")
        // and offer "This wasn't me" → phone.reportFraud(request)
    }
}
// end-snippet

// snippet:kotlin-move
/** Old phone: the link to show as one QR code (to the new phone only: once, for ten minutes). */
suspend fun startMove(phone: PhoneSignIn): String = phone.moveOut().link // asks the user once per account

/** New phone: the scanned link. Returns what to tell the user. */
suspend fun finishMove(phone: PhoneSignIn, scannedLink: String, fcmToken: String?): String {
    val push = if (fcmToken != null) PhoneSignIn.fcm(fcmToken) else PhoneSignIn.LONG_POLL
    return try {
        val moved = phone.moveIn(scannedLink, deviceName = "Bobby's new Pixel", push = push)
        "Moved ${moved.accounts.size} account(s) and ${moved.totpAccounts.size} code(s)"
    } catch (e: AuthenticatorException.MoveAlreadyUsed) {
        "This code was used already: start a new move on the old phone"
    } catch (e: AuthenticatorException.MoveExpired) {
        "This code expired: start a new move on the old phone"
    } catch (e: AuthenticatorException.MoveVoucherRemoved) {
        "The old phone was removed from an account: start a new move"
    } catch (e: AuthenticatorException.InvalidMoveLink) {
        "This is not a move code"
    }
}

/** Old phone, after the user chose: keep its accounts, or remove them (each server is told). */
suspend fun afterMove(phone: PhoneSignIn, removeFromThisPhone: Boolean) {
    if (removeFromThisPhone) phone.removeAllAccounts()
}

/** Without the old phone: the TOTP accounts through a passphrase-encrypted file (never phone sign-in). */
suspend fun restoreCodes(phone: PhoneSignIn, exportFile: String, passphrase: String): Int? =
    try {
        phone.importTotpAccounts(exportFile, passphrase).size
    } catch (e: AuthenticatorException.WrongPassphrase) {
        null // ask again
    }
// end-snippet
