package checkpoint

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/audit-stream/audit-stream/internal/store"
	"golang.org/x/mod/sumdb/note"
)

// KeyFile is the generated signing key inside the data directory.
const KeyFile = "checkpoint-signing.key"

// logIDKey is the store meta key of the random log id.
const logIDKey = "log_id"

// MetaStore is the part of the store LogID uses.
type MetaStore interface {
	Meta(ctx context.Context, key string) ([]byte, error)
	SwapMeta(ctx context.Context, key string, old, value []byte) error
}

// LogID returns the log's random id, creating it on first use. It names the
// default origin, audit-stream/<log id>, so two logs never share an origin.
// Instances starting together on one database agree on one id: the first
// to store its id wins and the others read it.
func LogID(ctx context.Context, st MetaStore) (string, error) {
	for {
		v, err := st.Meta(ctx, logIDKey)
		if err == nil {
			return string(v), nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return "", err
		}
		b := make([]byte, 8)
		rand.Read(b)
		id := hex.EncodeToString(b)
		err = st.SwapMeta(ctx, logIDKey, nil, []byte(id))
		if err == nil {
			return id, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return "", err
		}
	}
}

// Key is a note signing key with its verifier key.
type Key struct {
	Signer      note.Signer
	VerifierKey string // name+hash+base64
}

// ParseKey parses a note private key, PRIVATE+KEY+name+hash+base64, as
// note.GenerateKey writes it.
func ParseKey(skey string) (*Key, error) {
	skey = strings.TrimSpace(skey)
	s, err := note.NewSigner(skey)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w (want a note private key, as audit-stream keygen writes it)", err)
	}
	// PRIVATE+KEY+<name>+<hash>+<base64(alg ‖ seed)>: the name may not
	// contain '+' (the base64 may), so the key is the fifth field on.
	raw, err := base64.StdEncoding.DecodeString(strings.SplitN(skey, "+", 5)[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return nil, errors.New("signing key: only Ed25519 note keys are supported")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(s.Name(), pub)
	if err != nil {
		return nil, err
	}
	return &Key{Signer: s, VerifierKey: vkey}, nil
}

// GenerateKey returns a new Ed25519 note key named name (the origin).
func GenerateKey(name string) (skey string, k *Key, err error) {
	skey, _, err = note.GenerateKey(rand.Reader, name)
	if err != nil {
		return "", nil, err
	}
	k, err = ParseKey(skey)
	return skey, k, err
}

// ReadKeyFile reads a signing key file holding a note private key.
func ReadKeyFile(path string) (*Key, error) { return LoadKey(path, "") }

// LoadKey reads the signing key from source: a file, or "env:NAME" for the
// environment variable NAME (how orchestrators hand out secrets). The key is
// a note private key, as audit-stream keygen writes it, or an Ed25519 key in
// a PEM "PRIVATE KEY" block (PKCS#8, as openssl genpkey -algorithm ed25519
// writes it). PKCS#8 carries no name: the key is named name (the origin),
// which must then be given.
func LoadKey(source, name string) (*Key, error) {
	var text string
	if v, ok := strings.CutPrefix(source, "env:"); ok {
		text = os.Getenv(v)
		if strings.TrimSpace(text) == "" {
			return nil, fmt.Errorf("signing key: the environment variable %s is unset or empty", v)
		}
		source = "$" + v
	} else {
		b, err := os.ReadFile(source)
		if err != nil {
			return nil, err
		}
		text = string(b)
	}
	var k *Key
	var err error
	if strings.HasPrefix(strings.TrimSpace(text), "-----BEGIN") {
		k, err = parsePKCS8(text, name)
	} else {
		k, err = ParseKey(text)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	return k, nil
}

// parsePKCS8 reads an Ed25519 private key from a PEM PKCS#8 block and
// names it name.
func parsePKCS8(text, name string) (*Key, error) {
	block, rest := pem.Decode([]byte(strings.TrimSpace(text)))
	if block == nil || block.Type != "PRIVATE KEY" || len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("signing key: want one PEM block of type PRIVATE KEY (PKCS#8)")
	}
	raw, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signing key: PKCS#8: %w", err)
	}
	priv, ok := raw.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing key: the PKCS#8 key is a %T; only Ed25519 keys sign checkpoints", raw)
	}
	if name == "" {
		return nil, errors.New("signing key: a PKCS#8 key carries no name; it is named by the log's origin, which must be known here")
	}
	vkey, err := note.NewEd25519VerifierKey(name, priv.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	// name+hash+base64(0x01 ‖ public key): the hash is the second field.
	hash := strings.SplitN(vkey, "+", 3)[1]
	skey := "PRIVATE+KEY+" + name + "+" + hash + "+" + base64.StdEncoding.EncodeToString(append([]byte{1}, priv.Seed()...))
	return ParseKey(skey)
}

// WriteKeyFile writes skey to path with mode 0600, refusing to overwrite.
//
// A crash at any moment leaves either no file at path or the whole key,
// never an empty or partial one that would stop the next start: the key is
// written to a temporary file in the same directory and fsynced, then linked
// to path (which, unlike a rename, fails if path exists), and the directory
// is fsynced so that the new name survives a power loss.
func WriteKeyFile(path, skey string) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after the link, only the temporary name goes
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.WriteString(skey + "\n")
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Link(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes the entries of dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// LoadOrCreateKey reads the key kept in the data directory dir, generating
// it (named name) on first start. created reports a new key.
func LoadOrCreateKey(dir, name string) (k *Key, created bool, err error) {
	path := filepath.Join(dir, KeyFile)
	k, err = ReadKeyFile(path)
	if err != nil && emptyFile(path) {
		// Left by a crash while an older version created the key (it
		// wrote in place): nothing was ever signed with it, so it is
		// replaced rather than blocking every start.
		if rerr := os.Remove(path); rerr != nil {
			return nil, false, rerr
		}
		err = os.ErrNotExist
	}
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return k, false, err
	}
	skey, k, err := GenerateKey(name)
	if err != nil {
		return nil, false, err
	}
	if err := WriteKeyFile(path, skey); err != nil {
		return nil, false, fmt.Errorf("store generated signing key: %w", err)
	}
	return k, true, nil
}

// emptyFile reports whether path is a regular file of size 0.
func emptyFile(path string) bool {
	fi, err := os.Lstat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Size() == 0
}
