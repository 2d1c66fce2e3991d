#if canImport(UserNotifications) && os(iOS)
import AuthenticatorCore
import Foundation
import UserNotifications

/// For the app's Notification Service Extension (`mutable-content: 1` pushes): asks the core to
/// fetch and verify the request the push names, and replaces the generic alert with the account,
/// app and location. Anything else (expired, answered, unknown account, errors) keeps the generic
/// text. Use from `UNNotificationServiceExtension.didReceive(_:withContentHandler:)`.
public enum SignInNotificationService {
    public static func content(
        for notification: UNNotificationRequest,
        using phone: PhoneSignIn
    ) async -> UNNotificationContent {
        let generic = notification.content
        guard let notification = try? RemoteNotification(userInfo: generic.userInfo),
              let outcome = try? await phone.handleRemoteNotification(notification),
              let text = SignInNotificationContent(outcome: outcome),
              let content = generic.mutableCopy() as? UNMutableNotificationContent
        else { return generic }
        content.title = text.title
        content.body = text.body
        content.threadIdentifier = text.requestId
        return content
    }
}
#endif
