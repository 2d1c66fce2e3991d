//! The public API surface of the generated bindings, as sorted-in-order text lines: the types,
//! methods, record fields, enum cases and error variants a Kotlin or Swift developer can call.
//! uniffi's own runtime helpers (FFI converters, handle maps, `Uniffi*`) are left out, so the
//! surface changes exactly when the exported Rust API changes.

/// Kotlin helpers the generator emits in every file (not part of our API).
fn kotlin_helper(name: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "FfiConverter",
        "Uniffi",
        "uniffi",
        "RustBuffer",
        "ForeignBytes",
        "IntegrityChecking",
        "JavaLangRef",
    ];
    const NAMES: &[&str] = &["Disposable", "NoHandle", "InternalException"];
    PREFIXES.iter().any(|p| name.starts_with(p)) || NAMES.contains(&name) || name.ends_with("Impl")
}

fn swift_helper(name: &str) -> bool {
    name.starts_with("FfiConverter")
        || name.starts_with("uniffi")
        || name.starts_with("Uniffi")
        || name.ends_with("Impl")
}

fn squeeze(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('`', "")
        .replace("( ", "(")
        .replace(" )", ")")
}

/// Joins a declaration spread over several lines (uniffi wraps enum-case payloads) until its
/// parentheses balance.
fn join_balanced<'a>(first: &'a str, rest: &mut impl Iterator<Item = &'a str>) -> String {
    let mut s = first.to_owned();
    let depth = |s: &str| s.matches('(').count() as i64 - s.matches(')').count() as i64;
    while depth(&s) > 0 {
        match rest.next() {
            Some(l) => {
                s.push(' ');
                s.push_str(l);
            }
            None => break,
        }
    }
    s
}

/// The declaration after a leading `@Throws(…)` annotation on the same line, if any.
fn strip_throws(l: &str) -> &str {
    match l.strip_prefix("@Throws(") {
        Some(rest) => rest
            .split_once(") ")
            .map_or(l, |(_, decl)| decl.trim_start()),
        None => l,
    }
}

fn decl_name(after_keyword: &str) -> String {
    after_keyword
        .trim()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// Builds the block state for a declaration keyword.
type Make<B> = fn(String) -> B;

#[derive(PartialEq)]
enum KBlock {
    None,
    Skip,
    Interface(String),
    Class(String),
    Data(String),
    Enum(String),
    Sealed(String),
}

pub fn kotlin(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut block = KBlock::None;
    let mut lines = src
        .lines()
        .filter(|l| !l.trim_start().starts_with('*') && !l.trim_start().starts_with("/**"));
    while let Some(line) = lines.next() {
        let col0 = !line.starts_with(' ') && !line.is_empty();
        if col0 {
            if line.starts_with('}') || line.starts_with(')') {
                if !matches!(block, KBlock::Data(_)) || line.starts_with(')') {
                    block = KBlock::None;
                }
                continue;
            }
            let l = strip_throws(line.trim_end_matches('{').trim());
            if l.starts_with("internal ") || l.starts_with("private ") || l.starts_with('@') {
                block = KBlock::Skip;
                continue;
            }
            let l = l.strip_prefix("public ").unwrap_or(l);
            let kinds: &[(&str, Make<KBlock>)] = &[
                ("interface ", KBlock::Interface),
                ("open class ", KBlock::Class),
                ("data class ", KBlock::Data),
                ("enum class ", KBlock::Enum),
                ("sealed class ", KBlock::Sealed),
                ("class ", KBlock::Class),
                ("object ", KBlock::Class),
                ("abstract class ", KBlock::Class),
            ];
            if let Some((kw, make)) = kinds.iter().find(|(kw, _)| l.starts_with(kw)) {
                let name = decl_name(&l[kw.len()..]);
                if kotlin_helper(&name) {
                    block = KBlock::Skip;
                } else {
                    out.push(format!(
                        "kotlin {}",
                        squeeze(l.trim_end_matches('(')).trim_end()
                    ));
                    block = make(name);
                }
                continue;
            }
            if l.starts_with("fun ") || l.starts_with("suspend fun ") {
                let name = decl_name(l.trim_start_matches("suspend ").trim_start_matches("fun "));
                if !kotlin_helper(&name) {
                    out.push(format!("kotlin {}", squeeze(l)));
                }
            }
            continue;
        }
        let t = line.trim();
        match &block {
            KBlock::Interface(n) => {
                if t.starts_with("fun ") || t.starts_with("suspend fun ") {
                    out.push(format!("kotlin {n}.{}", squeeze(t)));
                }
            }
            KBlock::Class(n) => {
                // The companion object's factories (`Authenticator.withSecretStore`): the
                // class's own methods are `override`s of its interface, listed there.
                let f = strip_throws(t);
                if f.starts_with("fun ") && !kotlin_helper(&decl_name(&f[4..])) {
                    let full = join_balanced(f, &mut lines);
                    out.push(format!(
                        "kotlin {n}.companion {}",
                        squeeze(full.trim_end_matches('{')).trim()
                    ));
                }
                if t.starts_with("constructor(")
                    && !t.contains("UniffiWithHandle")
                    && !t.contains("NoHandle")
                {
                    let full = join_balanced(t, &mut lines);
                    out.push(format!(
                        "kotlin {n}.{}",
                        squeeze(full.trim_end_matches(':').trim_end_matches('{')).trim()
                    ));
                }
            }
            KBlock::Data(n) => {
                if t.starts_with("var ") || t.starts_with("val ") {
                    out.push(format!("kotlin {n}.{}", squeeze(t.trim_end_matches(','))));
                }
            }
            KBlock::Enum(n) => {
                if !t.is_empty()
                    && t.chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || "_,;".contains(c))
                {
                    out.push(format!("kotlin {n}.{}", t.trim_end_matches([',', ';'])));
                }
            }
            KBlock::Sealed(n) => {
                let l = t.strip_prefix("data ").unwrap_or(t);
                if line.starts_with("    ") && !line.starts_with("     ") {
                    if let Some(rest) = l
                        .strip_prefix("class ")
                        .or_else(|| l.strip_prefix("object "))
                    {
                        let _ = rest;
                        let full = squeeze(&join_balanced(l, &mut lines));
                        let head = match (full.find(") :"), full.find(" :")) {
                            (Some(i), _) => &full[..=i],
                            (None, Some(i)) => &full[..i],
                            (None, None) => &full,
                        };
                        out.push(format!("kotlin {n}.{head}"));
                    }
                }
            }
            KBlock::None | KBlock::Skip => {}
        }
    }
    out
}

#[derive(PartialEq)]
enum SBlock {
    None,
    Skip,
    Protocol(String),
    Class(String),
    Struct(String),
    Enum(String),
}

pub fn swift(src: &str) -> Vec<String> {
    // The generator splits `public \nenum X` over two lines.
    let src = src.replace("public \nenum ", "public enum ");
    let mut out = Vec::new();
    let mut block = SBlock::None;
    let mut lines = src
        .lines()
        .filter(|l| !l.trim_start().starts_with('*') && !l.trim_start().starts_with("/**"));
    while let Some(line) = lines.next() {
        let t = line.trim();
        let t_nobrace = t.trim_end_matches('{').trim();
        let kinds: &[(&str, Make<SBlock>)] = &[
            ("public protocol ", SBlock::Protocol),
            ("open class ", SBlock::Class),
            ("public struct ", SBlock::Struct),
            ("public enum ", SBlock::Enum),
        ];
        if !line.starts_with(' ') {
            if let Some((kw, make)) = kinds.iter().find(|(kw, _)| t.starts_with(kw)) {
                let name = decl_name(&t[kw.len()..]);
                if swift_helper(&name) {
                    block = SBlock::Skip;
                } else {
                    // Keep the declaration without its conformance list details that the
                    // generator may reorder: name and kind only, plus conformances.
                    out.push(format!("swift {}", squeeze(t_nobrace)));
                    block = make(name);
                }
                continue;
            }
            if t.starts_with("extension ")
                || t.starts_with("fileprivate ")
                || t.starts_with("private ")
            {
                block = SBlock::Skip;
                continue;
            }
            if let Some(rest) = t.strip_prefix("public func ") {
                if !swift_helper(&decl_name(rest)) {
                    out.push(format!("swift {}", squeeze(t_nobrace)));
                }
                block = SBlock::Skip;
                continue;
            }
        }
        match &block {
            SBlock::Protocol(n) => {
                if t.starts_with("func ") {
                    out.push(format!("swift {n}.{}", squeeze(t)));
                }
            }
            SBlock::Class(n) => {
                // Methods are listed once, in the protocol; the class adds its initializers.
                if t.starts_with("public convenience init") || t.starts_with("public static func ")
                {
                    out.push(format!("swift {n}.{}", squeeze(t_nobrace)));
                }
            }
            SBlock::Struct(n) => {
                if t.starts_with("public var ") || t.starts_with("public let ") {
                    out.push(format!("swift {n}.{}", squeeze(t)));
                }
            }
            SBlock::Enum(n) => {
                if t.starts_with("case ") {
                    let full = join_balanced(t, &mut lines);
                    out.push(format!("swift {n}.{}", squeeze(&full)));
                }
            }
            SBlock::None | SBlock::Skip => {}
        }
    }
    out
}

/// `source` without its string literals and comments, so braces can be counted.
fn code_only(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        match (in_string, c) {
            (true, '\\') => {
                chars.next();
            }
            (true, '"') => in_string = false,
            (true, _) => {}
            (false, '"') => in_string = true,
            (false, '/') if chars.peek() == Some(&'/') => break,
            (false, c) => out.push(c),
        }
    }
    out
}

/// A declaration up to its body or initializer: after the parameter list (if any), what follows
/// ` = ` or ` {` is dropped.
fn signature(decl: &str) -> &str {
    let mut depth = 0i64;
    let mut params_end = 0;
    for (i, c) in decl.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    params_end = i + 1;
                    break;
                }
            }
            _ => {}
        }
    }
    let rest = &decl[params_end..];
    let cut = [
        rest.find(" = "),
        rest.find(" {"),
        rest.strip_suffix(" =").map(str::len),
        rest.strip_suffix('{').map(str::len),
    ]
    .into_iter()
    .flatten()
    .min();
    let end = params_end + cut.unwrap_or(rest.len());
    decl[..end].trim_end()
}

/// The public members of a hand-written facade (Kotlin `android/src/common`, Swift
/// `ios/Sources/PhoneSignIn`): each declaration at the top level or in a class, object or
/// companion (never inside a function body), without `private`/`internal`/`fileprivate`
/// ones, as `<lang> <file> <Container>.<declaration head>`.
pub fn facade(lang: &str, file: &str, src: &str) -> Vec<String> {
    const KINDS: &[&str] = &[
        "class ",
        "data class ",
        "sealed class ",
        "enum class ",
        "interface ",
        "object ",
        "companion object",
        "fun ",
        "suspend fun ",
        "val ",
        "var ",
        "const val ",
        "init(",
        "convenience init(",
        "struct ",
        "enum ",
        "protocol ",
        "func ",
        "static func ",
        "static let ",
        "let ",
        "extension ",
        "case ",
        "typealias ",
    ];
    const HIDDEN: &[&str] = &["private ", "internal ", "fileprivate ", "private(set) "];
    const MODIFIERS: &[&str] = &[
        "public ",
        "open ",
        "override ",
        "final ",
        "@discardableResult ",
        "@JvmStatic ",
        "@Throws(AuthenticatorException::class) ",
        "nonisolated ",
        "required ",
        "mutating ",
        "inline ",
        "operator ",
    ];
    let mut out = Vec::new();
    // One entry per open brace: the container's name, or None for a function body or other block.
    let mut stack: Vec<Option<String>> = Vec::new();
    let mut in_doc = false;
    let mut lines = src.lines();
    while let Some(line) = lines.next() {
        let t = line.trim();
        if in_doc {
            in_doc = !t.contains("*/");
            continue;
        }
        if t.starts_with("/*") {
            in_doc = !t.contains("*/");
            continue;
        }
        let code = code_only(t);
        let in_container = stack.iter().all(Option::is_some);
        let mut decl = code.trim();
        // Swift members are internal unless marked; Kotlin's are public unless marked.
        let hidden = HIDDEN.iter().any(|h| decl.starts_with(h))
            || (lang.starts_with("swift")
                && !decl.starts_with("public ")
                && !decl.starts_with("open ")
                && !decl.starts_with("case "));
        while let Some(m) = MODIFIERS.iter().find(|m| decl.starts_with(*m)) {
            decl = decl[m.len()..].trim_start();
        }
        let kind = KINDS.iter().find(|k| decl.starts_with(*k));
        let mut opened: Option<String> = None;
        // The code whose braces open and close blocks: a declaration's lines up to its
        // balanced parentheses (a primary constructor over several lines).
        let mut braces = code.clone();
        if in_container && !hidden {
            if let Some(k) = kind {
                // `shown`: the declaration as written; `braces`: the same without strings.
                let mut shown = t.to_owned();
                while let Some(m) = MODIFIERS.iter().find(|m| shown.starts_with(*m)) {
                    shown = shown[m.len()..].trim_start().to_owned();
                }
                let mut head = decl.to_owned();
                let depth = |s: &str| s.matches('(').count() as i64 - s.matches(')').count() as i64;
                while depth(&head) > 0 {
                    match lines.next() {
                        Some(l) => {
                            head.push(' ');
                            head.push_str(&code_only(l.trim()));
                            shown.push(' ');
                            shown.push_str(l.trim());
                        }
                        None => break,
                    }
                }
                braces = head.clone();
                let shown = squeeze(&shown);
                let head = signature(&shown);
                let container = stack
                    .iter()
                    .flatten()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(".");
                if !(k.starts_with("case ") && container.is_empty()) {
                    out.push(if container.is_empty() {
                        format!("{lang} {file} {head}")
                    } else {
                        format!("{lang} {file} {container}.{head}")
                    });
                }
                let is_type = [
                    "class ",
                    "data class ",
                    "sealed class ",
                    "enum class ",
                    "interface ",
                    "object ",
                    "struct ",
                    "enum ",
                    "protocol ",
                    "extension ",
                ]
                .contains(k);
                if *k == "companion object" {
                    opened = Some("companion".into());
                } else if is_type {
                    opened = Some(decl_name(&decl[k.len()..]));
                }
            }
        }
        for c in braces.chars() {
            match c {
                '{' => stack.push(opened.take().filter(|_| in_container && !hidden)),
                '}' => {
                    stack.pop();
                }
                _ => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kotlin_surface_keeps_api_and_drops_runtime_helpers() {
        let src = "\
public interface FfiConverter<KotlinType, FfiType> {
    fun lift(value: FfiType): KotlinType
}
public interface AuthenticatorInterface {
    /**
     * doc
     */
    suspend fun `poll`(`waitSeconds`: kotlin.UInt): List<PendingRequest>
    companion object
}
open class Authenticator: Disposable, AutoCloseable, AuthenticatorInterface
{
    constructor(withHandle: UniffiWithHandle, handle: Long) {
    }
    constructor(`dataDir`: kotlin.String) :
        this(UniffiWithHandle, 1)
}
data class PushTarget (
    var `accountId`: kotlin.String
    , 
    var `requestId`: kotlin.String
){
    companion object
}
enum class Decision {
    APPROVED,
    DENIED;
    companion object
}
sealed class AuthenticatorException: kotlin.Exception() {
    class WrongNumber(
        val `attemptsLeft`: kotlin.UInt
        ) : AuthenticatorException() {
        override val message
            get() = \"x\"
    }
    class InvalidNumber(
        ) : AuthenticatorException() {
    }
}
internal object UniffiLib {
    fun x()
}
";
        assert_eq!(
            kotlin(src),
            vec![
                "kotlin interface AuthenticatorInterface",
                "kotlin AuthenticatorInterface.suspend fun poll(waitSeconds: kotlin.UInt): List<PendingRequest>",
                "kotlin open class Authenticator: Disposable, AutoCloseable, AuthenticatorInterface",
                "kotlin Authenticator.constructor(dataDir: kotlin.String)",
                "kotlin data class PushTarget",
                "kotlin PushTarget.var accountId: kotlin.String",
                "kotlin PushTarget.var requestId: kotlin.String",
                "kotlin enum class Decision",
                "kotlin Decision.APPROVED",
                "kotlin Decision.DENIED",
                "kotlin sealed class AuthenticatorException: kotlin.Exception()",
                "kotlin AuthenticatorException.class WrongNumber(val attemptsLeft: kotlin.UInt)",
                "kotlin AuthenticatorException.class InvalidNumber()",
            ]
        );
    }

    #[test]
    fn swift_surface_keeps_api_and_drops_runtime_helpers() {
        let src = "\
public protocol DeviceKeyStore: AnyObject, Sendable {
    /**
     * doc
     */
    func delete(alias: String) async throws 
}
open class DeviceKeyStoreImpl: DeviceKeyStore, @unchecked Sendable {
open func delete(alias: String)async throws   {
}
}
public struct FfiConverterTypeDecision: FfiConverterRustBuffer {
    public var x: Int
}
public struct PushTarget: Equatable, Hashable {
    public var accountId: String
}
public 
enum AuthenticatorError: Swift.Error, Equatable {
    case WrongNumber(attemptsLeft: UInt32
    )
    case NotEnrolled
}
public func FfiConverterTypeDecision_lift(_ buf: RustBuffer) throws -> Decision {
}
";
        assert_eq!(
            swift(src),
            vec![
                "swift public protocol DeviceKeyStore: AnyObject, Sendable",
                "swift DeviceKeyStore.func delete(alias: String) async throws",
                "swift public struct PushTarget: Equatable, Hashable",
                "swift PushTarget.public var accountId: String",
                "swift public enum AuthenticatorError: Swift.Error, Equatable",
                "swift AuthenticatorError.case WrongNumber(attemptsLeft: UInt32)",
                "swift AuthenticatorError.case NotEnrolled",
            ]
        );
    }

    #[test]
    fn kotlin_surface_lists_companion_factories_and_top_level_functions() {
        let src = "\
open class Authenticator: Disposable, AutoCloseable, AuthenticatorInterface
{
    fun uniffiCloneHandle(): Long {
    }
    @Throws(AuthenticatorException::class)
    override suspend fun `accounts`() : List<AccountSummary> {
    }
    companion object {
    @Throws(AuthenticatorException::class) fun `withSecretStore`(`dataDir`: kotlin.String): Authenticator {
            return x
    }
    }
}
@Throws(AuthenticatorException::class) fun `webPushToken`(`endpoint`: kotlin.String): kotlin.String {
    return y
}
";
        assert_eq!(
            kotlin(src),
            vec![
                "kotlin open class Authenticator: Disposable, AutoCloseable, AuthenticatorInterface",
                "kotlin Authenticator.companion fun withSecretStore(dataDir: kotlin.String): Authenticator",
                "kotlin fun webPushToken(endpoint: kotlin.String): kotlin.String",
            ]
        );
    }

    #[test]
    fn facade_surface_lists_public_members_never_bodies_or_private_ones() {
        let kt = "\
package org.phonesignin.android

/** A doc { with a brace. */
class PhoneSignIn(
    dataDir: String,
    keyStore: DeviceKeyStore,
) : AutoCloseable {
    val core: Authenticator =
        if (x) {
            val local = 1
        } else {
            Authenticator(\"}\")
        }

    suspend fun enroll(link: String, push: PushRegistration = LONG_POLL): AccountSummary {
        val inner = 2
        return core.enroll(link)
    }

    private fun hidden() = 3

    companion object {
        const val PORT: UShort = 47813u
        fun fcm(token: String) = PushRegistration(PushKind.FCM, token)
    }
}

internal fun helper() {}
";
        assert_eq!(
            facade("kotlin-facade", "PhoneSignIn.kt", kt),
            vec![
                "kotlin-facade PhoneSignIn.kt class PhoneSignIn(dataDir: String, keyStore: DeviceKeyStore,) : AutoCloseable",
                "kotlin-facade PhoneSignIn.kt PhoneSignIn.val core: Authenticator",
                "kotlin-facade PhoneSignIn.kt PhoneSignIn.suspend fun enroll(link: String, push: PushRegistration = LONG_POLL): AccountSummary",
                "kotlin-facade PhoneSignIn.kt PhoneSignIn.companion object",
                "kotlin-facade PhoneSignIn.kt PhoneSignIn.companion.const val PORT: UShort",
                "kotlin-facade PhoneSignIn.kt PhoneSignIn.companion.fun fcm(token: String)",
            ]
        );
        let swift = "\
public final class PhoneSignIn: Sendable {
    public let core: Authenticator
    private let prompts: CancellablePrompts
    public init(dataDirectory: URL) throws {
        let path = \"{\"
    }
    static func dataPath(_ url: URL) throws -> String { url.path }
    @discardableResult
    public func start(port: UInt16 = 1) async throws -> UInt16 {
        try await core.start(port: port)
    }
}
final class Hidden {
    public func notReachable() {}
}
";
        assert_eq!(
            facade("swift-facade", "PhoneSignIn.swift", swift),
            vec![
                "swift-facade PhoneSignIn.swift class PhoneSignIn: Sendable",
                "swift-facade PhoneSignIn.swift PhoneSignIn.let core: Authenticator",
                "swift-facade PhoneSignIn.swift PhoneSignIn.init(dataDirectory: URL) throws",
                "swift-facade PhoneSignIn.swift PhoneSignIn.func start(port: UInt16 = 1) async throws -> UInt16",
            ]
        );
    }
}
