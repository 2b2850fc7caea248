// goverify: what an appc client built on Go's golang.org/x/crypto/openpgp makes of pyrkt's keys
// and signatures. It does what rkt's keystore does: ReadArmoredKeyRing on the served key block,
// then CheckArmoredDetachedSignature on the image and its .asc.
//
//	goverify keys KEYRING.asc               prints the fingerprint of every key the library read
//	goverify verify KEYRING.asc FILE SIG.asc  prints the signer's fingerprint, or fails
//
// Built offline in GOPATH mode against Debian's golang-golang-x-crypto-dev (see
// tests/signing/go_verifier.py). Exit status 1 and one line on stderr on any failure.
package main

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/crypto/openpgp"
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "goverify: "+format+"\n", args...)
	os.Exit(1)
}

func readKeyRing(path string) openpgp.EntityList {
	f, err := os.Open(path)
	if err != nil {
		fail("%v", err)
	}
	defer f.Close()
	keys, err := openpgp.ReadArmoredKeyRing(f)
	if err != nil {
		fail("reading keys: %v", err)
	}
	if len(keys) == 0 {
		fail("reading keys: no key read")
	}
	return keys
}

func main() {
	if len(os.Args) < 3 {
		fail("usage: goverify keys KEYRING | goverify verify KEYRING FILE SIGNATURE")
	}
	keys := readKeyRing(os.Args[2])
	switch os.Args[1] {
	case "keys":
		for _, entity := range keys {
			fmt.Println(strings.ToUpper(fmt.Sprintf("%x", entity.PrimaryKey.Fingerprint)))
		}
	case "verify":
		if len(os.Args) != 5 {
			fail("usage: goverify verify KEYRING FILE SIGNATURE")
		}
		signed, err := os.Open(os.Args[3])
		if err != nil {
			fail("%v", err)
		}
		defer signed.Close()
		signature, err := os.Open(os.Args[4])
		if err != nil {
			fail("%v", err)
		}
		defer signature.Close()
		signer, err := openpgp.CheckArmoredDetachedSignature(keys, signed, signature)
		if err != nil {
			fail("verifying: %v", err)
		}
		fmt.Println(strings.ToUpper(fmt.Sprintf("%x", signer.PrimaryKey.Fingerprint)))
	default:
		fail("unknown command %q", os.Args[1])
	}
}
