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
