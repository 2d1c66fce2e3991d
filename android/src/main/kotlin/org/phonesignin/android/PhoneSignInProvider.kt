package org.phonesignin.android

import android.content.Context
import java.io.File

/** The process-wide [PhoneSignIn] (the core is one instance per data directory). */
object PhoneSignInProvider {
    val prompter = BiometricPrompter()

    @Volatile private var instance: PhoneSignIn? = null

    fun get(context: Context): PhoneSignIn =
        instance ?: synchronized(this) {
            instance ?: run {
                val app = context.applicationContext
                PhoneSignIn(
                    File(app.noBackupFilesDir, "phonesignin").path,
                    AndroidKeystoreKeyStore(app, prompter),
                    AndroidKeystoreSecretStore(),
                ).also { instance = it }
            }
        }
}
