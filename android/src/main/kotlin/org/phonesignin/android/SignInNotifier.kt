package org.phonesignin.android

import android.app.NotificationChannel
import android.app.NotificationManager
import android.content.Context
import androidx.core.app.NotificationCompat
import androidx.core.app.NotificationManagerCompat

/** Posts a [SignInNotification] (account, app, location — never the number). */
object SignInNotifier {
    private const val CHANNEL = "phonesignin.requests"

    fun show(context: Context, note: SignInNotification) {
        val manager = NotificationManagerCompat.from(context)
        if (!manager.areNotificationsEnabled()) return
        manager.createNotificationChannel(
            NotificationChannel(CHANNEL, "Sign-in requests", NotificationManager.IMPORTANCE_HIGH),
        )
        val notification = NotificationCompat.Builder(context, CHANNEL)
            .setSmallIcon(android.R.drawable.ic_lock_lock)
            .setContentTitle(note.title)
            .setContentText(note.body.lineSequence().first())
            .setStyle(NotificationCompat.BigTextStyle().bigText(note.body))
            .setCategory(NotificationCompat.CATEGORY_MESSAGE)
            .setAutoCancel(true)
            .build()
        try {
            manager.notify(note.requestId.hashCode(), notification)
        } catch (e: SecurityException) {
            // POST_NOTIFICATIONS was revoked between the check and the call.
        }
    }
}
