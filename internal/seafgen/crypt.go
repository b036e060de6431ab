package seafgen

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// Encrypted libraries are generated with Seafile's encryption version 2
// (common/seafile-crypt.c), for real rather than with look-alike bytes:
//
//   - derive(data) = PBKDF2-HMAC-SHA256(data, fixed 8-byte salt, 1000
//     iterations, 32 bytes) as key, then PBKDF2-HMAC-SHA256(key, same salt,
//     10 iterations, 16 bytes) as IV;
//   - magic = hex(derive(repo_id + password).key);
//   - key ("random key") = hex(AES-256-CBC(secret, derive(password))), 48 bytes;
//   - blocks = AES-256-CBC with PKCS#7 padding of each plaintext chunk under
//     derive(secret), so a block is 1 to 16 bytes longer than its plaintext
//     and the file object's "size" is the plaintext size, as in Seafile.
//
// The secret is derived from the library id instead of being random, so runs
// are reproducible. A Seafile server given the password could decrypt the
// generated files; the backup only ever copies the ciphertext.

// v2Salt is seafile-crypt.c's fixed salt for encryption versions 1 and 2.
var v2Salt = []byte{0xda, 0x90, 0x45, 0xc3, 0x06, 0xc7, 0xcc, 0x26}

// DefaultPassword is the password of encrypted libraries when
// LibraryOptions.Password is empty.
const DefaultPassword = "seafgen-password"

// encV2 is the Seafile encryption version the generator writes.
const encV2 = 2

// cryptor encrypts blocks of one store.
type cryptor struct {
	block cipher.Block
	iv    []byte
}

func deriveKeyV2(data []byte) (key, iv []byte, err error) {
	key, err = pbkdf2.Key(sha256.New, string(data), v2Salt, 1000, 32)
	if err != nil {
		return nil, nil, err
	}
	iv, err = pbkdf2.Key(sha256.New, string(key), v2Salt, 10, 16)
	if err != nil {
		return nil, nil, err
	}
	return key, iv, nil
}

// cbcEncrypt is AES-CBC with PKCS#7 padding (always at least one byte of
// padding), as OpenSSL's EVP_Encrypt* produce for Seafile.
func cbcEncrypt(block cipher.Block, iv, plain []byte) []byte {
	pad := aes.BlockSize - len(plain)%aes.BlockSize
	out := make([]byte, len(plain)+pad)
	copy(out, plain)
	for i := len(plain); i < len(out); i++ {
		out[i] = byte(pad)
	}
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(out, out)
	return out
}

// cbcDecrypt reverses cbcEncrypt.
func cbcDecrypt(block cipher.Block, iv, ct []byte) ([]byte, error) {
	if len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return nil, errors.New("seafgen: ciphertext length is not a positive multiple of 16")
	}
	out := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(out, ct)
	pad := int(out[len(out)-1])
	if pad == 0 || pad > aes.BlockSize || pad > len(out) {
		return nil, errors.New("seafgen: bad padding")
	}
	for _, b := range out[len(out)-pad:] {
		if int(b) != pad {
			return nil, errors.New("seafgen: bad padding")
		}
	}
	return out[:len(out)-pad], nil
}

// librarySecret is the 32-byte file key of an encrypted library, derived
// from its id so generated data is reproducible.
func librarySecret(repoID string) []byte {
	s := sha256.Sum256([]byte("seafgen library secret\x00" + repoID))
	return s[:]
}

// encMagic computes the "magic" of an encryption-v2 library.
func encMagic(repoID, password string) (string, error) {
	key, _, err := deriveKeyV2([]byte(repoID + password))
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(key), nil
}

// encRandomKey computes the "key" field: the secret encrypted with the
// password.
func encRandomKey(secret []byte, password string) (string, error) {
	key, iv, err := deriveKeyV2([]byte(password))
	if err != nil {
		return "", err
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(cbcEncrypt(b, iv, secret)), nil
}

// newCryptor recovers the file key from the "key" field and the password,
// as seafile_decrypt_repo_enc_key does, and returns a block cryptor.
func newCryptor(randomKey, password string) (*cryptor, error) {
	enc, err := hex.DecodeString(randomKey)
	if err != nil || len(enc) != 48 {
		return nil, fmt.Errorf("seafgen: bad random key %q", randomKey)
	}
	pk, piv, err := deriveKeyV2([]byte(password))
	if err != nil {
		return nil, err
	}
	pb, err := aes.NewCipher(pk)
	if err != nil {
		return nil, err
	}
	secret, err := cbcDecrypt(pb, piv, enc)
	if err != nil {
		return nil, fmt.Errorf("seafgen: random key does not decrypt with the password: %w", err)
	}
	key, iv, err := deriveKeyV2(secret)
	if err != nil {
		return nil, err
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return &cryptor{block: b, iv: iv}, nil
}

func (c *cryptor) encrypt(plain []byte) []byte { return cbcEncrypt(c.block, c.iv, plain) }

func (c *cryptor) decrypt(ct []byte) ([]byte, error) { return cbcDecrypt(c.block, c.iv, ct) }
