import AuthenticatorCore

/// What a sign-in notification shows, built from verified request details only: account, app
/// name and location (each when the server's policy shows it). Never the number — the core does
/// not know it; the user reads it on the sign-in screen and types it on the phone.
public struct SignInNotificationContent: Equatable, Sendable {
    public var requestId: String
    public var title: String
    public var body: String

    public init?(outcome: PushOutcome) {
        guard case let .showRequest(request) = outcome else { return nil }
        self.init(request: request)
    }

    public init(request: PendingRequest) {
        requestId = request.requestId
        switch request.kind {
        case .passwordless: title = "Approve sign-in?"
        case .push: title = "Approve sign-in request?"
        case .newDevice: title = "New device added. Was this you?"
        }
        var lines = [String]()
        if let device = request.deviceName { lines.append("Device: \(device)") }
        lines.append(request.upn)
        if let app = request.appName { lines.append("App: \(app)") }
        if let location = request.location { lines.append("Location: \(location)") }
        lines.append(request.serverName)
        body = lines.joined(separator: "\n")
    }
}
