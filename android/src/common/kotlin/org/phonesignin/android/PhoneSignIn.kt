package org.phonesignin.android

import kotlinx.coroutines.CancellationException
import org.phonesignin.core.AccountSummary
import org.phonesignin.core.Authenticator
import org.phonesignin.core.AuthenticatorException
import org.phonesignin.core.Decision
import org.phonesignin.core.DeviceKeyStore
import org.phonesignin.core.MoveIn
import org.phonesignin.core.MoveOut
import org.phonesignin.core.PendingRequest
import org.phonesignin.core.PlatformException
import org.phonesignin.core.PushKind
import org.phonesignin.core.PushOutcome
import org.phonesignin.core.PushRegistration
import org.phonesignin.core.PushUpdateResult
import org.phonesignin.core.SecretStore
import org.phonesignin.core.TotpAccount
import org.phonesignin.core.TotpCode
import org.phonesignin.core.webPushToken

/**
 * The app's handle on the phone sign-in core: one instance per process and data directory.
 *
 * Thin on purpose. Every method is one call into the Rust core (generated bindings in
 * `org.phonesignin.core`); the protocol, the number check and every signature live there. What
 * this class adds is platform plumbing only:
 * - coroutines: every network call is a `suspend` function; cancelling the calling coroutine
 *   cancels the call in the core (also the long wait of [waitForRequests]);
 * - every method that touches storage or the network is a `suspend` function (the core runs it
 *   on its own threads), so none blocks the caller's thread;
 * - the key store callbacks are wrapped so that nothing they throw — not even a
 *   `java.lang.Error`, which the generated code does not catch — escapes into the core's
 *   callback machinery: it arrives as a typed [org.phonesignin.core.AuthenticatorException].
 *
 * User verification is part of [DeviceKeyStore.sign]: the core passes a prompt with every
 * approval signature (and with the one that enables phone sign-in), and the key store shows it
 * for that very signature ([AndroidKeystoreKeyStore]: the key's own `BiometricPrompt`, or a
 * standalone one for a key without user-authentication binding).
 *
 * Text from outside may hold an unpaired UTF-16 surrogate, which is not text to the core: every
 * call then throws [AuthenticatorException.InvalidInput] (the generated bindings check every
 * string they pass), and this facade names the argument and the error its kind of input calls
 * for (a link: [AuthenticatorException.InvalidEnrollmentUrl]; push data:
 * [AuthenticatorException.InvalidPushPayload]). After [close] every call throws
 * [AuthenticatorException.Closed].
 *
 * [secretStore] seals the TOTP secrets of the offline fallback at rest ([AndroidKeystoreSecretStore]:
 * an AES-GCM key in the Android Keystore). Without one the TOTP methods fail with
 * [AuthenticatorException.SecretStoreUnavailable] and enrollments keep no TOTP secret.
 */
class PhoneSignIn(
    dataDir: String,
    keyStore: DeviceKeyStore,
    secretStore: SecretStore? = null,
) : AutoCloseable {
    /** The generated core object, for anything this facade does not wrap. */
    val core: Authenticator =
        if (secretStore == null) {
            Authenticator(dataDir, GuardedKeyStore(keyStore))
        } else {
            Authenticator.withSecretStore(dataDir, GuardedKeyStore(keyStore), GuardedSecretStore(secretStore))
        }

    /** Enrolls this device from the registration QR code / link. */
    suspend fun enroll(
        enrollmentLink: String,
        deviceName: String,
        push: PushRegistration = LONG_POLL,
    ): AccountSummary {
        requireText("enrollmentLink", enrollmentLink, AuthenticatorException::InvalidEnrollmentUrl)
        requireText("deviceName", deviceName, AuthenticatorException::InvalidInput)
        return core.enroll(enrollmentLink, deviceName, push)
    }

    /**
     * The push registration changed: call from FCM's `onNewToken` ([fcm]) or when the UnifiedPush
     * connector reports a new endpoint ([webPush]). Tells every account's server, signed by each
     * account's device key (PROTOCOL.md §5.10); one [PushUpdateResult] per account. Call again
     * later (e.g. at the next start) for the accounts whose outcome is
     * [PushUpdateOutcome.RetryLater].
     */
    suspend fun updatePushRegistration(push: PushRegistration): List<PushUpdateResult> {
        requireText("the push token", push.token, AuthenticatorException::InvalidInput)
        return core.updatePushRegistration(push)
    }

    suspend fun accounts(): List<AccountSummary> = core.accounts()

    /** Creates the verification-bound key for [accountId] and registers it (prompts the user). */
    suspend fun enablePhoneSignIn(accountId: String): AccountSummary = core.enablePhoneSignIn(accountId)

    /**
     * Removes the account from this device, deletes its keys and tells its server (the device is
     * removed there too; a server that cannot be reached is told later).
     */
    suspend fun removeAccount(accountId: String) = core.removeAccount(accountId)

    /** FCM: hand over `RemoteMessage.data` exactly as it arrived; the core parses and verifies it. */
    suspend fun onPushData(data: Map<String, String>): PushOutcome {
        for ((key, value) in data) {
            requireText("a push data key", key, AuthenticatorException::InvalidPushPayload)
            requireText("push data value", value, AuthenticatorException::InvalidPushPayload)
        }
        return core.handlePushData(data)
    }

    /**
     * UnifiedPush / Web Push: hand over the message text the connector decrypted (RFC 8291), as
     * it arrived; the core parses it, fetches the request and verifies the server's signature.
     */
    suspend fun onPushMessage(text: String): PushOutcome {
        requireText("the push message", text, AuthenticatorException::InvalidPushPayload)
        return core.handlePushJson(text)
    }

    /**
     * Without push: waits up to [waitSeconds] (capped at 60 by the core) for sign-in requests and
     * returns the pending ones. Cancel the coroutine to stop waiting.
     */
    suspend fun waitForRequests(waitSeconds: UInt = 60u): List<PendingRequest> = core.poll(waitSeconds)

    suspend fun pendingRequests(): List<PendingRequest> = core.pendingRequests()

    /**
     * Approves after user verification (the key store prompts for the signature); [typedNumber]
     * is what the user typed. A request is identified by its account and its id.
     */
    suspend fun approve(request: PendingRequest, typedNumber: String): Decision =
        core.approve(request.accountId, request.requestId, typedNumber)

    /** Denies; needs no verification. */
    suspend fun deny(request: PendingRequest): Decision = core.deny(request.accountId, request.requestId)

    /** "This wasn't me": denies and reports fraud; needs no verification. */
    suspend fun reportFraud(request: PendingRequest): Decision =
        core.reportFraud(request.accountId, request.requestId)

    /**
     * Phishing-resistant sign-in (PROTOCOL.md §5.9): listens on `127.0.0.1:[port]` for the
     * sign-in pages open in a browser on this device, and returns the port it bound (0 picks
     * a free one, for tests). A request with [PendingRequest.browserOrigin] set can only be
     * approved after its page announced itself here, and only at the server's own origin: the
     * browser writes the page's origin itself, so a relayed (phished) page is told apart.
     *
     * Android may freeze a process in the background, and a frozen listener answers nothing:
     * call this when the app comes to the foreground (or from a foreground service while a
     * sign-in is in progress), and [stopBrowserListener] when it leaves. Calling it again
     * replaces the running listener, so it is safe from every `onStart`. A port another app
     * holds throws [AuthenticatorException.InvalidInput].
     */
    suspend fun startBrowserListener(port: UShort = DEFAULT_BROWSER_LISTENER_PORT): UShort =
        core.startBrowserListener(port)

    /** Stops the browser listener; does nothing when none runs. What it has seen is kept (15 min). */
    suspend fun stopBrowserListener() = core.stopBrowserListener()

    /**
     * Offline fallback: the TOTP accounts (each enrollment's, removed with its account, and
     * imports). Show [totpCode] when the user cannot approve (no network): they type it on the
     * sign-in page ("Use a verification code").
     */
    suspend fun totpAccounts(): List<TotpAccount> = core.totpAccounts()

    /** Adds a TOTP account from another service's `otpauth://totp/…` QR code. */
    suspend fun addTotpAccount(uri: String): TotpAccount {
        requireText("the otpauth URI", uri, AuthenticatorException::InvalidTotpUri)
        return core.addTotpAccount(uri)
    }

    /** The current code (RFC 6238) and the seconds it stays valid; works offline. */
    suspend fun totpCode(account: TotpAccount): TotpCode = core.totpCode(account.totpId)

    suspend fun removeTotpAccount(account: TotpAccount) = core.removeTotpAccount(account.totpId)

    /**
     * Moving to a new phone, on the old phone (PROTOCOL.md §5.11): each account's server issues
     * a move code this device vouches for (the user is asked once per account), and the TOTP
     * accounts the user added travel encrypted under a one-time key. Show [MoveOut.link] as one
     * QR code, to the new phone only: it works once, for ten minutes. Afterwards ask the user
     * whether to keep this phone's accounts or [removeAllAccounts].
     */
    suspend fun moveOut(): MoveOut = core.moveOut()

    /**
     * On the new phone, with the scanned move link: enrolls every account (active at once, and
     * with phone sign-in where the old phone had it; the user is asked for each) and adds the
     * TOTP accounts. Refusals: [AuthenticatorException.MoveAlreadyUsed],
     * [AuthenticatorException.MoveExpired], [AuthenticatorException.MoveVoucherRemoved],
     * [AuthenticatorException.InvalidMoveLink].
     */
    suspend fun moveIn(moveLink: String, deviceName: String, push: PushRegistration = LONG_POLL): MoveIn {
        requireText("moveLink", moveLink, AuthenticatorException::InvalidMoveLink)
        requireText("deviceName", deviceName, AuthenticatorException::InvalidInput)
        return core.moveIn(moveLink, deviceName, push)
    }

    /** After a move, on the old phone: removes every account (each server is told) and TOTP account. */
    suspend fun removeAllAccounts() = core.removeAllAccounts()

    /**
     * The TOTP accounts the user added as a passphrase-encrypted file (Argon2id, AES-256-GCM),
     * for a new phone without the old one at hand. Never phone sign-in keys.
     */
    suspend fun exportTotpAccounts(passphrase: String): String {
        requireText("passphrase", passphrase, AuthenticatorException::InvalidInput)
        return core.exportTotpAccounts(passphrase)
    }

    /** Adds the TOTP accounts of an export file: [AuthenticatorException.WrongPassphrase], [AuthenticatorException.InvalidExportFile]. */
    suspend fun importTotpAccounts(exportFile: String, passphrase: String): List<TotpAccount> {
        requireText("exportFile", exportFile, AuthenticatorException::InvalidInput)
        requireText("passphrase", passphrase, AuthenticatorException::InvalidInput)
        return core.importTotpAccounts(exportFile, passphrase)
    }

    /** Releases the core; every later call throws [AuthenticatorException.Closed]. */
    override fun close() = core.close()

    companion object {
        /**
         * The port sign-in pages post to (PROTOCOL.md §5.9) unless the deployment changed it
         * (`signin-server serve --browser-listener-port`): the server's page and this app must
         * agree on it, and nothing tells the app another one, so keep this unless told otherwise.
         */
        const val DEFAULT_BROWSER_LISTENER_PORT: UShort = 47813u

        /** No push service: the app calls [waitForRequests]. */
        val LONG_POLL = PushRegistration(PushKind.LONG_POLL, "")

        fun fcm(token: String) = PushRegistration(PushKind.FCM, token)

        /**
         * Web Push through the user's UnifiedPush distributor (no Google services): the endpoint
         * URL and the subscription's public key and auth secret (base64url) as the connector gives
         * them. Throws [AuthenticatorException.InvalidInput] for a subscription the server would
         * refuse (not https, a bad key or secret).
         */
        fun webPush(endpoint: String, p256dh: String, auth: String) =
            PushRegistration(PushKind.WEB_PUSH, webPushToken(endpoint, p256dh, auth))
    }
}

/**
 * Kotlin strings may hold unpaired UTF-16 surrogates, which are not text in Rust (a hostile FCM
 * data value could carry one). The generated bindings refuse them as
 * [AuthenticatorException.InvalidInput]; the facade checks first to name the argument and to
 * give the error the caller expects for that kind of input.
 */
internal fun requireText(what: String, value: String, invalid: (String) -> AuthenticatorException) {
    if (!isWellFormedUtf16(value)) throw invalid("$what is not valid Unicode text (an unpaired UTF-16 surrogate)")
}

/** True when every surrogate in [s] is half of a pair. */
internal fun isWellFormedUtf16(s: String): Boolean {
    var i = 0
    while (i < s.length) {
        val c = s[i]
        if (Character.isHighSurrogate(c)) {
            if (i + 1 >= s.length || !Character.isLowSurrogate(s[i + 1])) return false
            i += 2
        } else if (Character.isLowSurrogate(c)) {
            return false
        } else {
            i += 1
        }
    }
    return true
}

/** Runs a platform callback; anything but a declared [PlatformException] or a cancellation becomes `Failed`. */
internal suspend inline fun <T> guarded(what: String, call: () -> T): T =
    try {
        call()
    } catch (e: PlatformException) {
        throw e
    } catch (e: CancellationException) {
        throw e
    } catch (e: Throwable) {
        throw PlatformException.Failed("$what: $e")
    }

internal class GuardedKeyStore(private val inner: DeviceKeyStore) : DeviceKeyStore {
    override suspend fun generate(alias: String, requireUserVerification: Boolean): ByteArray =
        guarded("key store generate") { inner.generate(alias, requireUserVerification) }

    override suspend fun sign(alias: String, message: ByteArray, prompt: String?): ByteArray =
        guarded("key store sign") { inner.sign(alias, message, prompt) }

    override suspend fun delete(alias: String) = guarded("key store delete") { inner.delete(alias) }
}

internal class GuardedSecretStore(private val inner: SecretStore) : SecretStore {
    override suspend fun seal(context: String, plaintext: ByteArray): ByteArray =
        guarded("secret store seal") { inner.seal(context, plaintext) }

    override suspend fun unseal(context: String, sealed: ByteArray): ByteArray =
        guarded("secret store unseal") { inner.unseal(context, sealed) }
}
