// OpenSSL's libcrypto (Debian libssl-dev): the P-256 the Linux tests use in place of the
// Secure Enclave.
#include <openssl/evp.h>
#include <openssl/ec.h>
#include <openssl/obj_mac.h>
#include <openssl/crypto.h>
