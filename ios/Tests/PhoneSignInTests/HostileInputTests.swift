import AuthenticatorCore
import Foundation
import Testing
@testable import PhoneSignIn

// No panic crosses the FFI boundary (issue 9): hostile strings, maps and numbers go through every
// exported method of the raw generated `Authenticator` (bindings/api-surface.txt). Each call
// either returns a sane result or throws a typed `AuthenticatorError` of the kinds that input can
// cause — never uniffi's internal `rustPanic` (what a Rust panic becomes in Swift) or any other
// error — and afterwards the same `Authenticator` still answers `accounts()` and still enrolls,
// enables phone sign-in and approves against the real signin-server. Swift strings cannot hold
// unpaired surrogates; unusual Unicode (bidi overrides, combining marks, emoji, tags,
// noncharacters, private use) stands in for them.

/// Counts hostile calls and how they ended ("returned" or the error's case name).
final class HostileTally: @unchecked Sendable {
    private let lock = NSLock()
    private var _calls = 0
    private var _outcomes: [String: Int] = [:]

    func record(_ outcome: String) {
        lock.withLock {
            _calls += 1
            _outcomes[outcome, default: 0] += 1
        }
        if self !== hostileTotals { hostileTotals.record(outcome) }
    }

    var calls: Int { lock.withLock { _calls } }
    var outcomes: [String: Int] { lock.withLock { _outcomes } }

    func report(_ what: String) {
        let totals = hostileTotals.outcomes.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
        print("HostileInputTests (\(what)): \(calls) hostile calls, \(outcomes["PANIC"] ?? 0) panics, \(outcomes["untyped"] ?? 0) untyped errors; all tests so far: \(hostileTotals.calls) [\(totals)]")
    }
}

let hostileTotals = HostileTally()

/// The case name of a typed error ("InvalidInput", "NotEnrolled", …).
func hostileCaseName(_ error: AuthenticatorError) -> String {
    Mirror(reflecting: error).children.first?.label ?? "\(error)"
}

/// How a hostile call ended: a typed error (by case name), a Rust panic, or some other error.
enum HostileVerdict: Equatable {
    case typed(String)
    case panic(String)
    case untyped(String)
}

/// What uniffi throws for a Rust panic is its fileprivate `UniffiInternalError.rustPanic`: it is
/// recognised by its type name.
func hostileVerdict(_ error: any Error) -> HostileVerdict {
    if let typed = error as? AuthenticatorError { return .typed(hostileCaseName(typed)) }
    let type = String(reflecting: Swift.type(of: error))
    if type.contains("UniffiInternalError") || "\(error)".contains("rustPanic") { return .panic("\(type): \(error)") }
    return .untyped("\(type): \(error)")
}

/// One hostile call: `.success(value)` or `.failure(typed error)`, which must be one of `allowed`
/// (any `AuthenticatorError` when empty). A panic (`rustPanic`) or any other error is recorded as
/// a test failure naming the call, and gives nil.
@discardableResult
func hostile<T>(
    _ tally: HostileTally,
    _ what: @autoclosure () -> String,
    allowed: Set<String> = [],
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> T
) async -> Result<T, AuthenticatorError>? {
    do {
        let value = try await body()
        tally.record("returned")
        return .success(value)
    } catch {
        switch hostileVerdict(error) {
        case let .typed(name):
            tally.record(name)
            if !allowed.isEmpty && !allowed.contains(name) {
                Issue.record("\(what()) threw \(error); expected one of \(allowed.sorted())", sourceLocation: sourceLocation)
            }
            return .failure(error as! AuthenticatorError)
        case let .panic(description):
            tally.record("PANIC")
            Issue.record("a Rust panic crossed the FFI boundary in \(what()): \(description)", sourceLocation: sourceLocation)
            return nil
        case let .untyped(description):
            tally.record("untyped")
            Issue.record("\(what()) threw \(description), not a typed AuthenticatorError", sourceLocation: sourceLocation)
            return nil
        }
    }
}

extension Result {
    var value: Success? { if case let .success(v) = self { v } else { nil } }
    var error: Failure? { if case let .failure(e) = self { e } else { nil } }
}

let hostileMiB = 1 << 20

/// Hostile text for any string parameter.
let hostileText: [String] = [
    "", " ", "\t\n\r\u{0B}\u{0C} ", "\u{A0}\u{2028}\u{2029}\u{3000}\u{85}",
    "\0", "a\0b", String(repeating: "\0", count: 1024),
    String(repeating: "A", count: hostileMiB), String(repeating: "€", count: hostileMiB / 3),
    String(repeating: "😀", count: hostileMiB / 4),
    "\u{01}\u{07}\u{08}\u{1B}[31mred\u{1B}[0m\u{7F}\u{9B}", "line1\nline2\r\nline3",
    "\u{202E}evil\u{202C}good", "\u{2066}\u{2067}\u{2068}\u{2069}\u{200E}\u{200F}\u{061C}",
    "\u{200B}\u{200C}\u{200D}\u{2060}\u{FEFF}", "e" + String(repeating: "\u{301}", count: 10_000),
    "👨‍👩‍👧‍👦🏳️‍🌈🇺🇳", "\u{10FFFF}", "\u{FFFF}\u{FFFE}\u{FFFD}", "\u{E0041}\u{E0042}\u{E007F}", "\u{E000}\u{F8FF}",
    "e\u{301}", "é", "A\u{FE0F}\u{20E3}", "\u{1D400}\u{1D7CE}", "𝟒𝟐",
    "'; DROP TABLE accounts; --", "\" OR \"1\"=\"1", "1; DELETE FROM requests; --", "%' OR 1=1 --",
    "../../etc/passwd", "..\\..\\windows\\system32\\config", "/etc/passwd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "javascript:alert(1)", "file:///etc/passwd", "data:text/html,<script>alert(1)</script>", "http://evil.test/",
    "phonesignin://enroll", "<script>alert(1)</script>", "%s%s%s%n", "${jndi:ldap://evil.test/a}", "{{7*7}}",
    "null", "undefined", "true", "[]", "{}", "NaN", "-0",
    "4", "999", "-1", "٤٢", "42\n", "４２", "0x2A", "+42", "4\u{0}2", "1e2", String(repeating: "9", count: 400),
    "18446744073709551616",
]

/// What a user might type (or an app pass) instead of two digits.
let hostileNumbers: [String] = [
    "", " ", "\n", "4", "999", "-1", "-01", "٤٢", "۴۲", "４２", "४२", "①②", "²³", "𝟒𝟐", "0x2A", "+4", "+42", "4 2",
    "4\u{0}2", "42\u{0}", "\u{0}42", "\0", "4.2", "4e1", "42a", "a42", "\u{200B}42", "42\u{200B}", "4\u{301}2",
    "4\u{20E3}2\u{20E3}", String(repeating: "4", count: hostileMiB), "'; DROP TABLE accounts; --",
    "../../etc/passwd", "NaN", "null",
]

/// Ids of the wrong length or alphabet derived from a real one (never equal to it, even trimmed).
func hostileIdVariants(_ real: String) -> [String] {
    let chars = Array(real)
    let fullwidth = String(String.UnicodeScalarView(real.unicodeScalars.map { s in
        ("A"..."Z").contains(s) ? Unicode.Scalar(s.value + 0xFEE0)! : s
    }))
    return [
        String(real.dropLast()), real + "A", String(real.dropLast()) + "=", real + "==",
        "+" + real.dropFirst(), "/" + real.dropFirst(), "." + real.dropFirst(), String(real.dropLast()) + "B",
        String(chars[..<11]) + "\u{200B}" + String(chars[11...]), real + "\0", "\0" + real,
        real.lowercased(), real.uppercased(), String(real.reversed()),
        String(repeating: "A", count: 22), String(repeating: "_", count: 22), String(repeating: "-", count: 21) + "w",
        "../" + real, real + "/../../etc/passwd", String(repeating: real, count: 1000), fullwidth,
        real + "\u{301}", "\u{202E}" + real,
    ].filter { $0.trimmingCharacters(in: .whitespacesAndNewlines) != real }
}

/// A short, printable description of a possibly huge or unprintable input.
func hostileShow(_ s: String) -> String {
    let scalars = s.unicodeScalars
    let head = scalars.prefix(40).map { c in
        c.value < 32 || (0x7F...0x9F).contains(c.value) ? String(format: "\\u{%02x}", c.value) : String(c)
    }.joined()
    return scalars.count > 40 ? "\"\(head)…\" (\(s.utf8.count) bytes)" : "\"\(head)\""
}

/// An enrolled account with phone sign-in and one pending request, on a raw core.
struct HostilePhone {
    let core: Authenticator
    let keys: EnclaveFormatKeyStore
    let upn: String
    let account: AccountSummary
    let request: PendingRequest
    let number: String
}

let hostileLongPoll = PushRegistration(kind: .longPoll, token: "")

func hostilePhoneWithPendingRequest(_ server: SigninServer) async throws -> HostilePhone {
    let keys = EnclaveFormatKeyStore()
    let core = try Authenticator(dataDir: tempDirectory().path, keyStore: keys)
    let (upn, link) = try server.newUser()
    let enrolled = try await core.enroll(enrollmentUrl: link, deviceName: "Swift hostile-input phone", push: hostileLongPoll)
    let account = try await core.enablePhoneSignIn(accountId: enrolled.accountId)
    let (id, number) = try await server.startSignIn(upn: upn, app: "Contoso Mail")
    let request = try #require(try await core.poll(waitSeconds: 10).first { $0.requestId == id })
    return HostilePhone(core: core, keys: keys, upn: upn, account: account, request: request, number: number)
}

/// After the hostile calls the same core still works: it lists exactly the accounts it had, and a
/// fresh user enrolls, enables phone sign-in, receives a sign-in and approves it.
func expectStillWorks(_ core: Authenticator, _ server: SigninServer, accountsBefore: [AccountSummary]) async throws {
    #expect(try await core.accounts() == accountsBefore, "the accounts are untouched")
    let (upn, link) = try server.newUser()
    let enrolled = try await core.enroll(enrollmentUrl: link, deviceName: "Swift phone after hostile input", push: hostileLongPoll)
    #expect(enrolled.upn == upn)
    #expect(try await core.enablePhoneSignIn(accountId: enrolled.accountId).phoneSignInEnabled)
    let (id, number) = try await server.startSignIn(upn: upn, app: "Contoso Portal")
    var request: PendingRequest?
    for _ in 0..<3 where request == nil {
        request = try await core.poll(waitSeconds: 10).first { $0.requestId == id && $0.accountId == enrolled.accountId }
    }
    #expect(request?.requestId == id, "the new sign-in reached the phone")
    #expect(try await core.approve(accountId: enrolled.accountId, requestId: id, typedNumber: number) == .approved)
    #expect(try await server.signInStatus(id) == "approved")
    #expect(Set(try await core.accounts().map(\.accountId)) == Set(accountsBefore.map(\.accountId) + [enrolled.accountId]))
}

func expectWellFormedIds(_ target: PushTarget, _ what: String) {
    for id in [target.accountId, target.requestId] {
        let alphabet = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".unicodeScalars)
        #expect(id.unicodeScalars.count == 22 && id.unicodeScalars.allSatisfy(alphabet.contains), "\(what) gave \(id)")
    }
}

@Suite struct HostileInputTests {
    let server: SigninServer
    init() throws { server = try sharedServer.get() }

    static let strangerAid = "QUJDREVGR0hJSktMTU5PUA"
    static let strangerRid = "AAAAAAAAAAAAAAAAAAAAAA"

    @Test func theHarnessTellsPanicsAndUntypedErrorsFromTypedOnesSoItCannotPassVacuously() {
        // A look-alike of uniffi's fileprivate panic error, with the same name.
        enum UniffiInternalError: Error { case rustPanic(String) }
        struct Untyped: Error {}
        guard case .panic = hostileVerdict(UniffiInternalError.rustPanic("simulated")) else {
            Issue.record("a panic was not recognised")
            return
        }
        guard case .untyped = hostileVerdict(Untyped()) else {
            Issue.record("an untyped error was not recognised")
            return
        }
        #expect(hostileVerdict(AuthenticatorError.NotEnrolled) == .typed("NotEnrolled"))
        #expect(hostileVerdict(AuthenticatorError.InvalidInput(reason: "x")) == .typed("InvalidInput"))
        #expect(hostileVerdict(AuthenticatorError.WrongNumber(attemptsLeft: 2)) == .typed("WrongNumber"))
        #expect(hostileVerdict(AuthenticatorError.ServerRejected(status: 400, code: "c", detail: "d")) == .typed("ServerRejected"))
    }

    @Test func constructorRefusesHostileDataDirectoriesWithATypedErrorOrOpensAnEmptyStore() async throws {
        let tally = HostileTally()
        let base = tempDirectory().path
        let aFile = base + "/a-file"
        try Data("not a directory".utf8).write(to: URL(fileURLWithPath: aFile))
        let garbageDb = base + "/garbage-db"
        try FileManager.default.createDirectory(atPath: garbageDb, withIntermediateDirectories: true)
        try Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 * 31) }).write(to: URL(fileURLWithPath: garbageDb + "/authenticator.sqlite3"))
        let refused = [
            "", " ", "\t\n\r ", "\u{A0}\u{2028}\u{3000}",
            "\0", base + "/a\0b", base + "/" + String(repeating: "A", count: hostileMiB),
            base + "/" + String(repeating: "x/", count: 3000), aFile, aFile + "/below-a-file",
            base + "/../../etc/passwd", garbageDb,
        ]
        for dir in refused {
            let outcome = await hostile(tally, "Authenticator(\(hostileShow(dir)))", allowed: ["InvalidInput", "Storage"]) {
                try Authenticator(dataDir: dir, keyStore: EnclaveFormatKeyStore())
            }
            #expect(outcome?.value == nil, "Authenticator(\(hostileShow(dir))) opened")
        }
        // Unusual but legal directory names: a store opens there, and it is empty.
        let legal = hostileText.filter {
            !$0.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty && !$0.contains("\0") && $0.utf8.count < 200 && !$0.contains("/")
        }
        for name in legal {
            let outcome = await hostile(tally, "Authenticator(\(hostileShow(name)))", allowed: ["Storage"]) {
                try Authenticator(dataDir: base + "/d-" + name, keyStore: EnclaveFormatKeyStore())
            }
            if let core = outcome?.value { #expect(try await core.accounts().isEmpty) }
        }
        let core = try Authenticator(dataDir: tempDirectory().path, keyStore: EnclaveFormatKeyStore())
        try await expectStillWorks(core, server, accountsBefore: [])
        tally.report("constructor")
    }

    @Test func enrollRefusesHostileLinksDeviceNamesAndPushTokensAndTheSameCoreThenEnrolls() async throws {
        let tally = HostileTally()
        let core = try Authenticator(dataDir: tempDirectory().path, keyStore: EnclaveFormatKeyStore())
        let (_, realLink) = try server.newUser()
        var query: [String: String] = [:]
        for pair in realLink.split(separator: "?", maxSplits: 1)[1].split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            query[String(kv[0])] = String(kv[1])
        }
        let fp = try #require(query["fp"])
        let serverParam = try #require(query["server"])
        let bogusCode = String(repeating: "A", count: 22)
        func link(v: String = "1", srv: String? = nil, code: String? = nil, f: String? = nil) -> String {
            "phonesignin://enroll?v=\(v)&server=\(srv ?? serverParam)&code=\(code ?? bogusCode)&fp=\(f ?? fp)"
        }
        let malformedLinks: [String] = [
            link(v: ""), link(v: "4"), link(v: "999"), link(v: "-1"), link(v: "%D9%A4%D9%A2"), link(v: "1%0A"),
            link(v: "18446744073709551616"), link(v: "1%00"),
            link(srv: "javascript:alert(1)"), link(srv: "file:///etc/passwd"), link(srv: "data:text/html,%3Cscript%3E"),
            link(srv: "ftp://127.0.0.1/"), link(srv: "http://evil.test/"), link(srv: "https://127.0.0.1:1/"), link(srv: ""),
            link(srv: serverParam + "..%2F..%2Fetc%2Fpasswd"), link(srv: "http://%00/"),
            link(code: ""), link(code: String(repeating: "A", count: 21)), link(code: String(repeating: "A", count: 23)),
            link(code: String(repeating: "+", count: 22)), link(code: String(repeating: "%00", count: 22)),
            link(code: String(repeating: "A", count: hostileMiB)), link(code: "'%3B%20DROP%20TABLE%20accounts%3B%20--"),
            link(code: "..%2F..%2Fetc%2Fpasswd"),
            link(f: ""), link(f: String(repeating: "A", count: 42)), link(f: String(repeating: "=", count: 43)),
            link(f: String(repeating: "A", count: 43)),
            link() + "&code=" + bogusCode, link() + "&v=1", link() + "&x=" + String(repeating: "y", count: hostileMiB),
            link() + String(repeating: "&x=y", count: 10_000), link().replacingOccurrences(of: "enroll", with: "ENROLL"),
            link().replacingOccurrences(of: "?", with: "#"), link() + "#\0",
            "  " + link().replacingOccurrences(of: "&", with: "\n&") + "  ", "\u{202E}" + link(), link() + "\u{301}",
        ]
        let links = hostileText + malformedLinks
        let linkRefusals: Set<String> = ["InvalidEnrollmentUrl", "Network", "ServerRejected", "ServerKeyMismatch"]
        for l in links {
            let outcome = await hostile(tally, "enroll(\(hostileShow(l)))", allowed: linkRefusals) {
                try await core.enroll(enrollmentUrl: l, deviceName: "phone", push: hostileLongPoll)
            }
            #expect(outcome?.value == nil, "enroll(\(hostileShow(l))) enrolled")
        }
        // Device names and push tokens, with a well-formed link whose code the server does not
        // know: the core refuses what it must, the server refuses the rest.
        let serverRefusals: Set<String> = ["InvalidInput", "ServerRejected"]
        for name in hostileText {
            let outcome = await hostile(tally, "enroll(deviceName: \(hostileShow(name)))", allowed: serverRefusals) {
                try await core.enroll(enrollmentUrl: link(), deviceName: name, push: hostileLongPoll)
            }
            #expect(outcome?.value == nil, "enrolled with an unknown code")
        }
        for kind in [PushKind.longPoll, .apns, .fcm, .webPush] {
            for token in hostileText + [String(repeating: "x", count: 4096), String(repeating: "x", count: 4097)] {
                let outcome = await hostile(tally, "enroll(push: \(kind) \(hostileShow(token)))", allowed: serverRefusals) {
                    try await core.enroll(enrollmentUrl: link(), deviceName: "phone", push: PushRegistration(kind: kind, token: token))
                }
                #expect(outcome?.value == nil, "enrolled with an unknown code")
            }
        }
        // Hostile Web Push subscription parts never become a token.
        for text in hostileText {
            for (endpoint, p256dh, auth) in [(text, "x", "x"), ("https://push.example.net/up", text, "x"), ("https://push.example.net/up", "x", text)] {
                let outcome = await hostile(tally, "webPushToken(\(hostileShow(text)))", allowed: ["InvalidInput"]) {
                    try webPushToken(endpoint: endpoint, p256dh: p256dh, auth: auth)
                }
                #expect(outcome?.value == nil, "a hostile subscription became a token")
            }
        }
        #expect(try await core.accounts().isEmpty)
        // The real link was never used by any of that: it still enrolls, with a device name that
        // is hostile to SQL and paths but plain text.
        let account = try await core.enroll(enrollmentUrl: realLink, deviceName: "'; DROP TABLE accounts; -- ../../etc/passwd 👪", push: hostileLongPoll)
        #expect(try await core.accounts() == [account])
        try await expectStillWorks(core, server, accountsBefore: [account])
        tally.report("enroll")
    }

    @Test func aDeviceNameOverTheProtocols200BytesIsRefusedByTheCoreBeforeTheServerAndTheLinkStillWorks() async throws {
        let tally = HostileTally()
        let core = try Authenticator(dataDir: tempDirectory().path, keyStore: EnclaveFormatKeyStore())
        let (upn, link) = try server.newUser()
        // 64 characters (the core's limit) of 4 bytes each: 256 bytes, over the 200 bytes the
        // server allows (PROTOCOL.md §5.2). Refused locally, as InvalidInput; the server would
        // answer ServerRejected(invalid_request).
        for name in [String(repeating: "😀", count: 64), String(repeating: "😀", count: 50) + "a", String(repeating: "𝟒", count: 51)] {
            #expect(await hostile(tally, "enroll(\(name.utf8.count) bytes)", allowed: ["InvalidInput"]) {
                try await core.enroll(enrollmentUrl: link, deviceName: name, push: hostileLongPoll)
            }?.value == nil)
        }
        #expect(try await core.accounts().isEmpty, "nothing stored")
        // Exactly 200 bytes (50 emoji) is allowed, and the link was never used up.
        #expect(try await core.enroll(enrollmentUrl: link, deviceName: String(repeating: "😀", count: 50), push: hostileLongPoll).upn == upn)
        tally.report("device name limits")
    }

    /// Swift strings cannot hold an unpaired UTF-16 surrogate: every way of making one from lone
    /// surrogate code units repairs it (U+FFFD), so what Kotlin callers must be guarded against
    /// cannot reach the Swift bindings. What those ways do give passes through every exported
    /// call that takes text, each answering or throwing a typed `AuthenticatorError`.
    @Test func loneSurrogatesCannotBeSwiftTextAndWhatSwiftMakesOfThemIsTypedInEveryTextArgument() async throws {
        let tally = HostileTally()
        let units: [[UInt16]] = [[0xD800], [0xDFFF], [0xDFFF, 0xD800], [0x61, 0xD800, 0x62]]
        var made: [String] = []
        for u in units {
            made.append(String(decoding: u, as: UTF16.self))
            made.append(u.withUnsafeBufferPointer { String(utf16CodeUnits: $0.baseAddress!, count: u.count) })
            made.append(NSString(characters: u, length: u.count) as String)
        }
        for text in made {
            #expect(text.unicodeScalars.contains("\u{FFFD}"), "a lone surrogate became \(Array(text.utf16)), not U+FFFD")
            #expect(String(decoding: Array(text.utf8), as: UTF8.self) == text, "valid UTF-8")
        }
        let phone = try await hostilePhoneWithPendingRequest(server)
        let core = phone.core
        let before = try await core.accounts()
        let aid = phone.account.accountId
        let rid = phone.request.requestId
        let (_, link) = try server.newUser()
        let p256dh = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
        let auth = "BTBZMqHH6r4Tts7J_aSIgg"
        for t in Set(made) {
            let d = tempDirectory().appendingPathComponent(t)
            await hostile(tally, "PhoneSignIn(dataDirectory:)") { _ = try PhoneSignIn(dataDirectory: d, keyStore: EnclaveFormatKeyStore()) }
            await hostile(tally, "Authenticator(dataDir:)") { _ = try Authenticator(dataDir: d.path, keyStore: EnclaveFormatKeyStore()) }
            await hostile(tally, "Authenticator.withSecretStore(dataDir:)") {
                _ = try Authenticator.withSecretStore(dataDir: d.path, keyStore: EnclaveFormatKeyStore(), secretStore: HandleSecretStore())
            }
            await hostile(tally, "enroll(link)") { try await core.enroll(enrollmentUrl: link + t, deviceName: "phone", push: PhoneSignIn.longPoll) }
            await hostile(tally, "enroll(deviceName)") { try await core.enroll(enrollmentUrl: "\(link)&x=1", deviceName: t, push: PhoneSignIn.longPoll) }
            await hostile(tally, "enroll(token)") {
                try await core.enroll(enrollmentUrl: "\(link)&x=2", deviceName: "phone", push: PushRegistration(kind: .fcm, token: t))
            }
            await hostile(tally, "enablePhoneSignIn") { try await core.enablePhoneSignIn(accountId: aid + t) }
            await hostile(tally, "removeAccount") { try await core.removeAccount(accountId: t + aid) }
            await hostile(tally, "parsePushJson") { try core.parsePushJson(payload: #"{"v":1,"aid":"\#(t)","rid":"\#(rid)"}"#) }
            await hostile(tally, "handlePushJson") { try await core.handlePushJson(payload: t) }
            await hostile(tally, "parsePushData(value)") { try core.parsePushData(data: ["psi_v": "1", "psi_aid": t, "psi_rid": rid]) }
            await hostile(tally, "handlePushData(key)") { try await core.handlePushData(data: [t: "1"]) }
            await hostile(tally, "fetchRequest(accountId)") { try await core.fetchRequest(accountId: t, requestId: rid) }
            await hostile(tally, "fetchRequest(requestId)") { try await core.fetchRequest(accountId: aid, requestId: t) }
            await hostile(tally, "approve(accountId)") { try await core.approve(accountId: t, requestId: rid, typedNumber: phone.number) }
            await hostile(tally, "approve(requestId)") { try await core.approve(accountId: aid, requestId: t, typedNumber: phone.number) }
            await hostile(tally, "approve(typedNumber)") { try await core.approve(accountId: aid, requestId: rid, typedNumber: phone.number + t) }
            await hostile(tally, "deny") { try await core.deny(accountId: aid, requestId: t) }
            await hostile(tally, "reportFraud") { try await core.reportFraud(accountId: t, requestId: rid) }
            await hostile(tally, "addTotpAccount") { try await core.addTotpAccount(uri: "otpauth://totp/\(t)?secret=GEZDGNBV") }
            await hostile(tally, "totpCode") { try await core.totpCode(totpId: t) }
            await hostile(tally, "removeTotpAccount") { try await core.removeTotpAccount(totpId: t) }
            await hostile(tally, "webPushToken(endpoint)") { try webPushToken(endpoint: "https://push.example/" + t, p256dh: p256dh, auth: auth) }
            await hostile(tally, "webPushToken(p256dh)") { try webPushToken(endpoint: "https://push.example/a", p256dh: p256dh + t, auth: auth) }
            await hostile(tally, "webPushToken(auth)") { try webPushToken(endpoint: "https://push.example/a", p256dh: p256dh, auth: t) }
            await hostile(tally, "updatePushRegistration(token)") {
                _ = try await core.updatePushRegistration(push: PushRegistration(kind: .longPoll, token: t))
            }
            await hostile(tally, "moveIn(link)") {
                _ = try await core.moveIn(moveLink: "phonesignin://move?v=1" + t, deviceName: "phone", push: PhoneSignIn.longPoll)
            }
            await hostile(tally, "moveIn(deviceName)") {
                _ = try await core.moveIn(moveLink: "phonesignin://move?v=1", deviceName: t, push: PhoneSignIn.longPoll)
            }
            await hostile(tally, "exportTotpAccounts") { _ = try await core.exportTotpAccounts(passphrase: "passphrase" + t) }
            await hostile(tally, "importTotpAccounts(export)") { _ = try await core.importTotpAccounts(export: "{}" + t, passphrase: "passphrase") }
            await hostile(tally, "importTotpAccounts(passphrase)") { _ = try await core.importTotpAccounts(export: "{}", passphrase: t) }
        }
        #expect(try await server.signInStatus(rid) == "pending")
        #expect(try await core.pendingRequests() == [phone.request])
        // U+FFFD is a legal character: a device name holding it may have enrolled the new link.
        let after = try await core.accounts()
        #expect(Set(before.map(\.accountId)).isSubset(of: Set(after.map(\.accountId))))
        try await expectStillWorks(core, server, accountsBefore: after)
        tally.report("lone surrogates")
    }

    @Test func hostileAccountIdsNeverReachAnAccountAndTheRealAccountAndRequestAreUntouched() async throws {
        let tally = HostileTally()
        let phone = try await hostilePhoneWithPendingRequest(server)
        let core = phone.core
        let before = try await core.accounts()
        let realAid = phone.account.accountId
        let realRid = phone.request.requestId
        let malformedOrUnknown: Set<String> = ["InvalidInput", "NotEnrolled"]
        let unknownRequest: Set<String> = ["InvalidInput", "UnknownRequest"]
        for aid in hostileText + hostileIdVariants(realAid) + hostileIdVariants(realRid) {
            let s = hostileShow(aid)
            #expect(await hostile(tally, "enablePhoneSignIn(\(s))", allowed: malformedOrUnknown) {
                try await core.enablePhoneSignIn(accountId: aid)
            }?.value == nil)
            #expect(await hostile(tally, "removeAccount(\(s))", allowed: malformedOrUnknown) {
                try await core.removeAccount(accountId: aid)
            }?.error != nil)
            #expect(await hostile(tally, "fetchRequest(\(s), real)", allowed: malformedOrUnknown) {
                try await core.fetchRequest(accountId: aid, requestId: realRid)
            }?.value == nil)
            #expect(await hostile(tally, "approve(\(s), real)", allowed: unknownRequest) {
                try await core.approve(accountId: aid, requestId: realRid, typedNumber: phone.number)
            }?.value == nil)
            #expect(await hostile(tally, "deny(\(s), real)", allowed: unknownRequest) {
                try await core.deny(accountId: aid, requestId: realRid)
            }?.value == nil)
            #expect(await hostile(tally, "reportFraud(\(s), real)", allowed: unknownRequest) {
                try await core.reportFraud(accountId: aid, requestId: realRid)
            }?.value == nil)
        }
        #expect(try await server.signInStatus(realRid) == "pending")
        #expect(try await core.pendingRequests() == [phone.request])
        #expect(phone.keys.aliases.count == 2, "no key was generated or deleted for a hostile id")
        try await expectStillWorks(core, server, accountsBefore: before)
        tally.report("account ids")
    }

    @Test func hostileRequestIdsAndNumbersLeaveTheRealRequestPendingThenTheExactNumberApproves() async throws {
        let tally = HostileTally()
        let phone = try await hostilePhoneWithPendingRequest(server)
        let core = phone.core
        let before = try await core.accounts()
        let aid = phone.account.accountId
        let realRid = phone.request.requestId
        let fetchRefusals: Set<String> = ["InvalidInput", "UnknownRequest", "ServerRejected"]
        let unknownRequest: Set<String> = ["InvalidInput", "UnknownRequest"]
        for rid in hostileText + hostileIdVariants(realRid) + hostileIdVariants(aid) {
            let s = hostileShow(rid)
            #expect(await hostile(tally, "fetchRequest(real, \(s))", allowed: fetchRefusals) {
                try await core.fetchRequest(accountId: aid, requestId: rid)
            }?.value == nil)
            #expect(await hostile(tally, "approve(real, \(s))", allowed: unknownRequest) {
                try await core.approve(accountId: aid, requestId: rid, typedNumber: phone.number)
            }?.value == nil)
            #expect(await hostile(tally, "deny(real, \(s))", allowed: unknownRequest) {
                try await core.deny(accountId: aid, requestId: rid)
            }?.value == nil)
            #expect(await hostile(tally, "reportFraud(real, \(s))", allowed: unknownRequest) {
                try await core.reportFraud(accountId: aid, requestId: rid)
            }?.value == nil)
        }
        // Both ids hostile at once.
        for (a, r) in zip(hostileText, hostileText.reversed()) {
            let s = "\(hostileShow(a)), \(hostileShow(r))"
            await hostile(tally, "approve(\(s))", allowed: unknownRequest) {
                try await core.approve(accountId: a, requestId: r, typedNumber: phone.number)
            }
            await hostile(tally, "deny(\(s))", allowed: unknownRequest) { try await core.deny(accountId: a, requestId: r) }
            await hostile(tally, "reportFraud(\(s))", allowed: unknownRequest) { try await core.reportFraud(accountId: a, requestId: r) }
            await hostile(tally, "fetchRequest(\(s))", allowed: ["InvalidInput"]) { try await core.fetchRequest(accountId: a, requestId: r) }
        }
        // Ids are taken exactly as given (PROTOCOL.md §2): with white space around them they are
        // malformed, never trimmed into the real ones.
        for (a, r) in [(" \(aid)\n", realRid), (aid, "\t\(realRid) "), ("\(aid)\n", "\(realRid)\n")] {
            let s = "\(hostileShow(a)), \(hostileShow(r))"
            #expect(await hostile(tally, "fetchRequest(padded \(s))", allowed: ["InvalidInput"]) {
                try await core.fetchRequest(accountId: a, requestId: r)
            }?.value == nil)
            #expect(await hostile(tally, "approve(padded \(s))", allowed: ["InvalidInput"]) {
                try await core.approve(accountId: a, requestId: r, typedNumber: phone.number)
            }?.value == nil)
        }

        // Numbers that are not two ASCII digits are refused before anything is signed or sent.
        let signedBefore = phone.keys.signatureCount
        for typed in hostileNumbers {
            #expect(await hostile(tally, "approve(real, real, \(hostileShow(typed)))", allowed: ["InvalidNumber"]) {
                try await core.approve(accountId: aid, requestId: realRid, typedNumber: typed)
            }?.error == .InvalidNumber)
        }
        #expect(phone.keys.signatureCount == signedBefore, "nothing signed for a malformed number")
        #expect(try await server.signInStatus(realRid) == "pending")
        #expect(try await core.pendingRequests() == [phone.request])

        // The number is the text, byte for byte (PROTOCOL.md §5.6): "42\n", " 42" or a no-break
        // space are refused before anything is signed, not trimmed into 42; no attempt is used.
        for padded in ["\(phone.number)\n", " \(phone.number)", "\t\(phone.number)", "\(phone.number)\u{A0}"] {
            #expect(await hostile(tally, "approve(real, real, \(hostileShow(padded)))", allowed: ["InvalidNumber"]) {
                try await core.approve(accountId: aid, requestId: realRid, typedNumber: padded)
            }?.error == .InvalidNumber)
        }
        #expect(phone.keys.signatureCount == signedBefore, "nothing signed for a padded number")
        let wrong = phone.number == "42" ? "43" : "42"
        #expect(await hostile(tally, "approve(real, real, wrong)", allowed: ["WrongNumber"]) {
            try await core.approve(accountId: aid, requestId: realRid, typedNumber: wrong)
        }?.error == .WrongNumber(attemptsLeft: 2))
        #expect(await hostile(tally, "approve(real, real, number)") {
            try await core.approve(accountId: aid, requestId: realRid, typedNumber: phone.number)
        }?.value == .approved)
        #expect(try await server.signInStatus(realRid) == "approved")
        // Answered: any further answer is a typed refusal.
        for typed in [phone.number, "", "٤٢"] {
            #expect(await hostile(tally, "approve(answered, \(hostileShow(typed)))", allowed: ["AlreadyAnswered", "InvalidNumber"]) {
                try await core.approve(accountId: aid, requestId: realRid, typedNumber: typed)
            }?.value == nil)
        }
        #expect(await hostile(tally, "deny(answered)", allowed: ["AlreadyAnswered"]) {
            try await core.deny(accountId: aid, requestId: realRid)
        }?.error == .AlreadyAnswered)
        #expect(await hostile(tally, "reportFraud(answered)", allowed: ["AlreadyAnswered"]) {
            try await core.reportFraud(accountId: aid, requestId: realRid)
        }?.error == .AlreadyAnswered)
        try await expectStillWorks(core, server, accountsBefore: before)
        tally.report("request ids and numbers")
    }

    @Test func hostilePushJsonIsParsedOrRefusedAsInvalidPushPayloadAndHandledWithoutPanic() async throws {
        let tally = HostileTally()
        let phone = try await hostilePhoneWithPendingRequest(server)
        let core = phone.core
        let before = try await core.accounts()
        let aid = phone.account.accountId
        let rid = phone.request.requestId
        let (sa, sr) = (Self.strangerAid, Self.strangerRid)
        func env(_ a: String, _ r: String, v: String = "1") -> String { #"{"v":\#(v),"aid":"\#(a)","rid":"\#(r)"}"# }
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        let hugeKey = String(repeating: "k", count: hostileMiB)
        let malformedPayloads: [String] = [
            deep, String(repeating: "[", count: 10_000),
            String(repeating: #"{"a":"#, count: 10_000) + "1" + String(repeating: "}", count: 10_000),
            #"{"psi":\#(deep)}"#, #"{"psi":{"v":1,"aid":\#(deep),"rid":"\#(sr)"}}"#,
            #"{"\#(hugeKey)":1}"#, #"{"aps":{"\#(hugeKey)":"x"}}"#,
            #"{"psi":"\#(env(sa, sr).replacingOccurrences(of: "\"", with: "\\\""))"}"#,
            #"{"psi":[]}"#, #"{"psi":null}"#, #"{"psi":1}"#, #"{"psi":true}"#, "[\(env(aid, rid))]",
            env(sa, sr, v: #""1""#), env(sa, sr, v: "1.0"), env(sa, sr, v: "-1"), env(sa, sr, v: "1e0"),
            env(sa, sr, v: "18446744073709551617"), env(sa, sr, v: "true"), env(sa, sr, v: "null"),
            env(sa, sr, v: "1e400"), env(sa, sr, v: "0"), env(sa, sr, v: "2"),
            #"{"v":1,"aid":5,"rid":"\#(sr)"}"#, #"{"v":1,"aid":null,"rid":"\#(sr)"}"#,
            #"{"v":1,"aid":["\#(sa)"],"rid":"\#(sr)"}"#, #"{"v":1,"aid":{},"rid":false}"#,
            #"{"v":1,"aid":"\#(sa)"}"#, #"{"v":1,"rid":"\#(sr)"}"#,
            #"{"v":1,"aid":"\ud800","rid":"\#(sr)"}"#, #"{"v":1,"aid":"\ud800\udc00","rid":"\#(sr)"}"#,
            #"{"v":1,"aid":"\u0000","rid":"\u0000"}"#, "{\"v\":1,\"aid\":\"\(sa)\0\",\"rid\":\"\(sr)\"}",
            env(sa, sr) + "garbage", "\u{FEFF}" + env(sa, sr),
            env("../../etc/passwd", "'; DROP TABLE accounts; --"), env("javascript:alert(1)", "file:///etc/passwd"),
            env(" " + sa, sr), env(sa.lowercased() + "=", sr), env("\u{202E}" + sa, sr), env(sa + "\u{301}", sr),
            #"{"psi":\#(env(sa, sr)),"psi":{}}"#,
            "{" + (1...10_000).map { #""k\#($0)":\#($0)"# }.joined(separator: ",") + "}",
            "\"" + String(repeating: #"\u0000"#, count: 10_000) + "\"", "1", "null", #""psi""#, "-0", "1e400",
        ]
        let payloads = hostileText + malformedPayloads
        // Well-formed envelopes: parsed to exactly their ids, whatever surrounds them.
        let wellFormed: [(String, PushTarget)] = [
            (env(sa, sr), PushTarget(accountId: sa, requestId: sr)),
            (#"{"aps":{"alert":"\#(hugeKey)"},"psi":\#(env(sa, sr))}"#, PushTarget(accountId: sa, requestId: sr)),
            (#"{"\#(hugeKey)":[[[]]],"psi":\#(env(aid, sr))}"#, PushTarget(accountId: aid, requestId: sr)),
            // A JSON escape spells the same id.
            (#"{"v":1,"aid":"\u0051UJDREVGR0hJSktMTU5PUA","rid":"\#(sr)"}"#, PushTarget(accountId: sa, requestId: sr)),
            (#"{"psi":\#(env(aid, rid))}"#, PushTarget(accountId: aid, requestId: rid)),
        ]
        for json in payloads {
            let s = hostileShow(json)
            let parsed = await hostile(tally, "parsePushJson(\(s))", allowed: ["InvalidPushPayload"]) {
                try core.parsePushJson(payload: json)
            }
            if let target = parsed?.value { expectWellFormedIds(target, "parsePushJson(\(s))") }
            let handled = await hostile(tally, "handlePushJson(\(s))", allowed: ["InvalidPushPayload", "ServerRejected"]) {
                try await core.handlePushJson(payload: json)
            }
            if let outcome = handled?.value {
                #expect(outcome == .unknownAccount || outcome == .showRequest(request: phone.request), "handlePushJson(\(s)) gave \(outcome)")
            }
            let refusedAsPayload = handled?.error.map { hostileCaseName($0) == "InvalidPushPayload" } ?? false
            #expect((parsed?.value == nil) == refusedAsPayload, "handlePushJson parses as parsePushJson does: \(s)")
        }
        for (json, target) in wellFormed {
            #expect(await hostile(tally, "parsePushJson(well-formed \(hostileShow(json)))") {
                try core.parsePushJson(payload: json)
            }?.value == target)
        }
        // A push names a request; it proves nothing. Unknown accounts are unknownAccount, the real
        // request is shown (fetched over the signed channel), unknown requests are refused.
        #expect(await hostile(tally, "handlePushJson(stranger)") { try await core.handlePushJson(payload: env(sa, sr)) }?.value == .unknownAccount)
        #expect(await hostile(tally, "handlePushJson(real)") {
            try await core.handlePushJson(payload: #"{"aps":{},"psi":\#(env(aid, rid))}"#)
        }?.value == .showRequest(request: phone.request))
        #expect(await hostile(tally, "handlePushJson(real account, unknown request)", allowed: ["UnknownRequest"]) {
            try await core.handlePushJson(payload: env(aid, sr))
        }?.value == nil)
        #expect(try await core.pendingRequests() == [phone.request])
        #expect(try await server.signInStatus(rid) == "pending")
        try await expectStillWorks(core, server, accountsBefore: before)
        tally.report("push JSON")
    }

    @Test func hostilePushDataMapsAreParsedOrRefusedAsInvalidPushPayloadAndHandledWithoutPanic() async throws {
        let tally = HostileTally()
        let phone = try await hostilePhoneWithPendingRequest(server)
        let core = phone.core
        let before = try await core.accounts()
        let aid = phone.account.accountId
        let rid = phone.request.requestId
        let (sa, sr) = (Self.strangerAid, Self.strangerRid)
        let valid = ["psi_v": "1", "psi_aid": sa, "psi_rid": sr]
        let hugeKey = String(repeating: "k", count: hostileMiB)
        func env(_ a: String, _ r: String) -> String { #"{"v":1,"aid":"\#(a)","rid":"\#(r)"}"# }
        func with(_ base: [String: String], _ key: String, _ value: String) -> [String: String] {
            base.merging([key: value]) { $1 }
        }
        var maps: [[String: String]] = []
        for h in hostileText + hostileNumbers {
            maps.append(with(valid, "psi_v", h))
            maps.append(with(valid, "psi_aid", h))
            maps.append(with(valid, "psi_rid", h))
            maps.append([h: h])
        }
        for v in ["1.0", "true", "[1]", #"{"v":1}"#, #""1""#, " 1", "1 ", "0", "2", "4294967297", "1\0", "١", "𝟏", "1\u{301}"] {
            maps.append(with(valid, "psi_v", v))
        }
        maps.append([:])
        maps.append(["psi": env(sa, sr)])
        maps.append(Dictionary(uniqueKeysWithValues: valid.map { ($0.key.uppercased(), $0.value) }))
        maps.append(Dictionary(uniqueKeysWithValues: valid.map { (" " + $0.key, $0.value) }))
        maps.append(Dictionary(uniqueKeysWithValues: valid.map { ($0.key + "\0", $0.value) }))
        maps.append(Dictionary(uniqueKeysWithValues: valid.map { ($0.key + "\u{301}", $0.value) }))
        for key in valid.keys { maps.append(valid.filter { $0.key != key }) }
        maps.append([hugeKey: "1"])
        maps.append(Dictionary(uniqueKeysWithValues: (1...10_000).map { ("k\($0)", "v\($0)") }))

        for data in maps {
            let s = hostileShow("\(data)")
            let parsed = await hostile(tally, "parsePushData(\(s))", allowed: ["InvalidPushPayload"]) {
                try core.parsePushData(data: data)
            }
            if let target = parsed?.value {
                #expect(target == PushTarget(accountId: data["psi_aid"] ?? "", requestId: data["psi_rid"] ?? ""), "parsePushData(\(s))")
                expectWellFormedIds(target, "parsePushData(\(s))")
            }
            if let outcome = await hostile(tally, "handlePushData(\(s))", allowed: ["InvalidPushPayload", "ServerRejected"], {
                try await core.handlePushData(data: data)
            })?.value {
                #expect(outcome == .unknownAccount, "handlePushData(\(s))")
            }
        }
        // Well-formed maps with hostile extras are still what they name.
        let extras: [[String: String]] = [
            [hugeKey: hugeKey],
            Dictionary(hostileText.map { ($0, $0) }) { first, _ in first },
            Dictionary(uniqueKeysWithValues: (1...10_000).map { ("k\($0)", "v\($0)") }),
        ]
        for extra in extras {
            let data = extra.merging(valid) { $1 }
            #expect(await hostile(tally, "parsePushData(valid + extras)") { try core.parsePushData(data: data) }?.value
                == PushTarget(accountId: sa, requestId: sr))
            #expect(await hostile(tally, "handlePushData(valid + extras)") { try await core.handlePushData(data: data) }?.value
                == .unknownAccount)
        }
        let real = ["psi_v": "1", "psi_aid": aid, "psi_rid": rid]
        #expect(await hostile(tally, "handlePushData(real)") {
            try await core.handlePushData(data: with(real, hugeKey, "x"))
        }?.value == .showRequest(request: phone.request))
        #expect(await hostile(tally, "handlePushData(real account, unknown request)", allowed: ["UnknownRequest"]) {
            try await core.handlePushData(data: with(real, "psi_rid", sr))
        }?.value == nil)
        #expect(try await core.pendingRequests() == [phone.request])
        try await expectStillWorks(core, server, accountsBefore: before)
        tally.report("push data maps")
    }

    /// A well-formed browser challenge (16 bytes, base64url).
    static let challenge = "AAECAwQFBgcICQoLDA0ODw"

    static func listenerURL(_ port: UInt16) -> String { "http://127.0.0.1:\(port)/v1/browser-binding" }

    /// No answer from `port` on loopback (the listener there stopped), within a few seconds.
    func expectNothingListens(on port: UInt16, sourceLocation: SourceLocation = #_sourceLocation) async {
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            do {
                _ = try await listenerCall(Self.listenerURL(port), body: Self.challenge, origin: nil)
            } catch {
                return // refused, or a kept-alive connection closed by the stopped listener
            }
            try? await Task.sleep(nanoseconds: 50_000_000)
        }
        Issue.record("something still answers on 127.0.0.1:\(port)", sourceLocation: sourceLocation)
    }

    @Test func browserListenerOnATakenPortIsATypedErrorStartAndStopInAnyOrderAreFineAndHostileRequestsAre4xx() async throws {
        let tally = HostileTally()
        let core = try Authenticator(dataDir: tempDirectory().path, keyStore: EnclaveFormatKeyStore())
        let before = try await core.accounts()
        for _ in 0..<3 { await hostile(tally, "stopBrowserListener() without a listener") { await core.stopBrowserListener() } }

        // A port another socket holds: a typed error, never a panic, and no listener.
        let taken = try LoopbackSocket()
        let onTaken = await hostile(tally, "startBrowserListener(\(taken.port)) on a taken port", allowed: ["InvalidInput"]) {
            try await core.startBrowserListener(port: taken.port)
        }
        #expect(onTaken?.value == nil, "a listener started on a port already taken")
        taken.close()
        await hostile(tally, "stopBrowserListener() after a failed start") { await core.stopBrowserListener() }

        // Started twice: the second replaces the first, whose port stops answering.
        let first = try #require(await hostile(tally, "startBrowserListener(0)") { try await core.startBrowserListener(port: 0) }?.value)
        #expect(try await listenerCall(Self.listenerURL(first), body: Self.challenge, origin: nil).status == 403)
        let second = try #require(await hostile(tally, "startBrowserListener(0) while one runs") { try await core.startBrowserListener(port: 0) }?.value)
        if second != first { await expectNothingListens(on: first) }
        // The same port again, at once: the core closes the old listener's socket before it
        // binds (what an app does on every return to the foreground).
        let again = try #require(await hostile(tally, "startBrowserListener(\(second)) while listening there") {
            try await core.startBrowserListener(port: second)
        }?.value)
        #expect(again == second)
        // Another Authenticator (another app) cannot take the port this one holds.
        let other = try Authenticator(dataDir: tempDirectory().path, keyStore: EnclaveFormatKeyStore())
        let onHeld = await hostile(tally, "another core's startBrowserListener(\(again))", allowed: ["InvalidInput"]) {
            try await other.startBrowserListener(port: again)
        }
        #expect(onHeld?.value == nil, "two listeners on one port")

        // Hostile requests to the listener: each refused with a 4xx, and it goes on answering.
        let url = Self.listenerURL(again)
        let origin = "https://signin.contoso.test"
        func status(_ method: String, _ body: String?, _ origin: String?, at: String? = nil) async throws -> Int {
            tally.record("HTTP")
            return try await listenerCall(at ?? url, method: method, body: body, origin: origin).status
        }
        #expect(try await status("POST", Self.challenge, nil) == 403, "no Origin: not a page")
        #expect(try await status("POST", Self.challenge, "null") == 403, "an opaque origin")
        #expect(try await status("POST", Self.challenge, "https://" + String(repeating: "a", count: 300)) == 403, "an overlong origin")
        #expect(try await status("OPTIONS", nil, nil) == 403, "a preflight without Origin")
        #expect(try await status("POST", Self.challenge, origin, at: url.replacingOccurrences(of: "/v1/browser-binding", with: "/v1/other")) == 404)
        #expect(try await status("GET", nil, origin) == 405)
        for body in ["", "not a challenge", String(Self.challenge.dropLast()), Self.challenge + "A", "%" + Self.challenge.dropFirst(), String(repeating: "\0", count: 8)] {
            #expect(try await status("POST", body, origin) == 400, "body \(hostileShow(body))")
        }
        #expect(try await status("POST", String(repeating: "A", count: 4096), origin) == 413, "a body over the listener's bound")
        #expect(try await status("OPTIONS", nil, origin) == 204, "the preflight of a page")
        #expect(try await status("POST", Self.challenge, origin) == 204, "a page")

        for _ in 0..<2 { await hostile(tally, "stopBrowserListener()") { await core.stopBrowserListener() } }
        await expectNothingListens(on: again)
        try await expectStillWorks(core, server, accountsBefore: before)

        // Through the facade (what apps call on every activation): starting again on the port it
        // holds, or just released, always listens there again.
        let phone = try PhoneSignIn(dataDirectory: tempDirectory(), keyStore: EnclaveFormatKeyStore())
        let port = try await phone.startBrowserListener(port: 0)
        for restart in 1...5 { #expect(try await phone.startBrowserListener(port: port) == port, "restart \(restart) on \(port)") }
        for _ in 0..<2 { await phone.stopBrowserListener() }
        #expect(try await phone.startBrowserListener(port: port) == port, "start on \(port) after a stop")
        #expect(try await listenerCall(Self.listenerURL(port), body: Self.challenge, origin: nil).status == 403)
        await phone.stopBrowserListener()
        await expectNothingListens(on: port)
        tally.report("browser listener")
    }

    @Test func pollWithExtremeWaitsAnswersAndCancelPollEndsEvenTheLongestWait() async throws {
        let tally = HostileTally()
        let core = try Authenticator(dataDir: tempDirectory().path, keyStore: EnclaveFormatKeyStore())
        // No accounts: every wait answers at once, with nothing.
        for wait: UInt32 in [0, 1, 60, 61, UInt32(Int32.max), .max] {
            let started = Date()
            #expect(await hostile(tally, "poll(\(wait)) without accounts") { try await core.poll(waitSeconds: wait) }?.value == [])
            #expect(Date().timeIntervalSince(started) < 10)
        }
        for _ in 0..<1_000 { await hostile(tally, "cancelPoll() with nothing to cancel") { core.cancelPoll() } }
        let (upn, link) = try server.newUser()
        let account = try await core.enroll(enrollmentUrl: link, deviceName: "phone", push: hostileLongPoll)
        _ = try await core.enablePhoneSignIn(accountId: account.accountId)
        #expect(await hostile(tally, "poll(0)") { try await core.poll(waitSeconds: 0) }?.value == [])
        // The largest waits (capped at 60 s by the core) end as soon as cancelPoll is called.
        for wait: UInt32 in [.max, UInt32(Int32.max) + 1, 61] {
            let started = Date()
            let polling = Task { await hostile(tally, "poll(\(wait))") { try await core.poll(waitSeconds: wait) }?.value }
            let canceller = Task {
                while !Task.isCancelled {
                    try? await Task.sleep(nanoseconds: 100_000_000)
                    await hostile(tally, "cancelPoll()") { core.cancelPoll() }
                }
            }
            let result = await polling.value
            canceller.cancel()
            #expect(result == [])
            #expect(Date().timeIntervalSince(started) < 15, "poll(\(wait)) was cancelled")
        }
        for _ in 0..<100 { await hostile(tally, "pendingRequests()") { try await core.pendingRequests() } }
        // A poll that is not cancelled still delivers.
        let (id, number) = try await server.startSignIn(upn: upn, app: "Contoso Mail")
        let delivered = await hostile(tally, "poll(max) with a request pending") { try await core.poll(waitSeconds: .max) }?.value
        #expect(delivered?.map(\.requestId) == [id])
        #expect(try await core.approve(accountId: account.accountId, requestId: id, typedNumber: number) == .approved)
        try await expectStillWorks(core, server, accountsBefore: try await core.accounts())
        tally.report("poll")
    }

    @Test func concurrentHostileCallsFromManyTasksAreAllTypedAndTheCoreKeepsWorking() async throws {
        let tally = HostileTally()
        let phone = try await hostilePhoneWithPendingRequest(server)
        let core = phone.core
        let before = try await core.accounts()
        let aid = phone.account.accountId
        let rid = phone.request.requestId
        let inputs = hostileText + hostileIdVariants(aid) + hostileIdVariants(rid)
        let done = await withTaskGroup(of: Bool.self) { group in
            for i in 0..<400 {
                group.addTask {
                    let h = inputs[i % inputs.count]
                    switch i % 10 {
                    case 0: await hostile(tally, "parsePushJson") { try core.parsePushJson(payload: h) }
                    case 1: await hostile(tally, "handlePushJson") { try await core.handlePushJson(payload: #"{"v":1,"aid":"\#(aid)","rid":"\#(h)"}"#) }
                    case 2: await hostile(tally, "parsePushData") { try core.parsePushData(data: ["psi_v": h, "psi_aid": aid, "psi_rid": rid]) }
                    case 3: await hostile(tally, "handlePushData") { try await core.handlePushData(data: ["psi_v": "1", "psi_aid": h, "psi_rid": rid]) }
                    case 4: await hostile(tally, "approve") { try await core.approve(accountId: aid, requestId: rid, typedNumber: String(h.prefix(64)) + "x") }
                    case 5: await hostile(tally, "deny") { try await core.deny(accountId: h, requestId: rid) }
                    case 6: await hostile(tally, "reportFraud") { try await core.reportFraud(accountId: aid, requestId: h) }
                    case 7: await hostile(tally, "fetchRequest") { try await core.fetchRequest(accountId: aid, requestId: h) }
                    case 8:
                        if i % 20 == 8 {
                            await hostile(tally, "enablePhoneSignIn") { try await core.enablePhoneSignIn(accountId: h) }
                        } else {
                            await hostile(tally, "removeAccount") { try await core.removeAccount(accountId: h) }
                        }
                    default:
                        switch i % 40 {
                        case 9: await hostile(tally, "accounts") { try await core.accounts() }
                        case 19: await hostile(tally, "pendingRequests") { try await core.pendingRequests() }
                        case 29: await hostile(tally, "poll(0)") { try await core.poll(waitSeconds: 0) }
                        default: await hostile(tally, "cancelPoll") { core.cancelPoll() }
                        }
                    }
                    return true
                }
            }
            var count = 0
            for await _ in group { count += 1 }
            return count
        }
        #expect(done == 400)
        #expect(tally.calls == 400)
        #expect(try await server.signInStatus(rid) == "pending")
        #expect(try await core.pendingRequests() == [phone.request])
        try await expectStillWorks(core, server, accountsBefore: before)
        tally.report("concurrent")
    }
}
