/*
 * AES-256-GCM over caller-owned buffers, in place (the tunnel data path). Node's Cipher.update
 * allocates its output twice per call (len + block size, then a zero-filled copy of exactly len) and
 * copies it: in a busy tunnel that was ~10% of tenant and engine CPU. This binds OpenSSL's EVP AEAD —
 * the copy Node itself links and exports, so nothing else is loaded — and encrypts or decrypts the
 * buffers where they lie. The wire format is the same as Node's: either side may use either backend.
 *
 * gcm(key: Buffer(32), nonce: Buffer(12), parts: Buffer[], encrypt: boolean, tag: Buffer(16)) → boolean
 *   encrypt: parts become ciphertext, tag receives the tag; true.
 *   decrypt: parts become plaintext, tag is checked; false (and parts hold garbage) if it does not match.
 * Throws TypeError on arguments of the wrong shape; nothing is written before they are all checked.
 */
#include <limits.h>
#include <node_api.h>
#include <openssl/evp.h>

#define KEY_BYTES 32
#define NONCE_BYTES 12
#define TAG_BYTES 16

static int buffer_of(napi_env env, napi_value v, unsigned char **data, size_t *len) {
  bool is;
  if (napi_is_buffer(env, v, &is) != napi_ok || !is) return 0;
  return napi_get_buffer_info(env, v, (void **)data, len) == napi_ok;
}

static napi_value fail(napi_env env, const char *what) {
  napi_throw_type_error(env, "ERR_NATIVE_AEAD_ARGS", what);
  return NULL;
}

static napi_value Gcm(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 5) return fail(env, "gcm takes 5 arguments");
  unsigned char *key, *nonce, *tag;
  size_t key_len, nonce_len, tag_len;
  bool encrypt, is_array;
  if (!buffer_of(env, argv[0], &key, &key_len) || key_len != KEY_BYTES) return fail(env, "key must be a 32-byte Buffer");
  if (!buffer_of(env, argv[1], &nonce, &nonce_len) || nonce_len != NONCE_BYTES) return fail(env, "nonce must be a 12-byte Buffer");
  if (napi_get_value_bool(env, argv[3], &encrypt) != napi_ok) return fail(env, "encrypt must be a boolean");
  if (!buffer_of(env, argv[4], &tag, &tag_len) || tag_len != TAG_BYTES) return fail(env, "tag must be a 16-byte Buffer");
  uint32_t n;
  if (napi_is_array(env, argv[2], &is_array) != napi_ok || !is_array || napi_get_array_length(env, argv[2], &n) != napi_ok) {
    return fail(env, "parts must be an array of Buffers");
  }
  unsigned char *data;
  size_t len;
  for (uint32_t i = 0; i < n; i++) { /* every part checked before any byte is touched */
    napi_value el;
    if (napi_get_element(env, argv[2], i, &el) != napi_ok || !buffer_of(env, el, &data, &len) || len > INT_MAX) {
      return fail(env, "parts must be an array of Buffers");
    }
  }
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  int ok = ctx != NULL && EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce, encrypt ? 1 : 0) == 1;
  int out_len;
  for (uint32_t i = 0; ok && i < n; i++) {
    napi_value el;
    ok = napi_get_element(env, argv[2], i, &el) == napi_ok && buffer_of(env, el, &data, &len);
    if (ok && len > 0) ok = EVP_CipherUpdate(ctx, data, &out_len, data, (int)len) == 1;
  }
  if (ok && !encrypt) ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_BYTES, tag) == 1;
  unsigned char rest[16];
  if (ok) ok = EVP_CipherFinal_ex(ctx, rest, &out_len) == 1; /* GCM has no output left; decrypting, this checks the tag */
  if (ok && encrypt) ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_BYTES, tag) == 1;
  EVP_CIPHER_CTX_free(ctx);
  napi_value result;
  napi_get_boolean(env, ok, &result);
  return result;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "gcm", NAPI_AUTO_LENGTH, Gcm, NULL, &fn);
  napi_set_named_property(env, exports, "gcm", fn);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
