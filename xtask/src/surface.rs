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
            let l = line.trim_end_matches('{').trim();
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
}
