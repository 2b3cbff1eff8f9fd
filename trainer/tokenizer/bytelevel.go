package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// byteToRune and runeToByte are GPT-2's bytes_to_unicode table, which every byte-level BPE
// (GPT-2, Llama 3, Qwen) uses to spell raw bytes as printable characters in vocab and merges:
// printable Latin-1 bytes map to themselves, the other 68 bytes to U+0100.. in byte order
// (so ' ' is 'Ġ' U+0120 and '\n' is 'Ċ' U+010A).
var (
	byteToRune [256]rune
	runeToByte = make(map[rune]byte, 256)
	// byteOrder lists the 256 bytes in the order of their characters' code points, which is
	// the order Hugging Face's BPE trainer gives the alphabet ids 0..255 ('!' first).
	byteOrder [256]byte
)

func init() {
	printable := func(b int) bool {
		return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
	}
	next := rune(256)
	for b := 0; b < 256; b++ {
		if printable(b) {
			byteToRune[b] = rune(b)
		} else {
			byteToRune[b] = next
			next++
		}
		runeToByte[byteToRune[b]] = byte(b)
	}
	i := 0
	for b := 0; b < 256; b++ { // printable bytes keep their code point, all below U+0100
		if printable(b) {
			byteOrder[i] = byte(b)
			i++
		}
	}
	for b := 0; b < 256; b++ { // the rest were numbered from U+0100 in byte order
		if !printable(b) {
			byteOrder[i] = byte(b)
			i++
		}
	}
}

// bytesToTokenString spells raw bytes in the byte-level alphabet.
func bytesToTokenString(b string) string {
	var sb strings.Builder
	sb.Grow(2 * len(b))
	for i := 0; i < len(b); i++ {
		sb.WriteRune(byteToRune[b[i]])
	}
	return sb.String()
}

// appendTokenBytes appends the raw bytes a vocabulary token stands for, as Hugging Face's
// ByteLevel decoder does: every character mapped back to its byte, or, when any character is
// outside the alphabet (an added token such as "hello world"), the token's UTF-8 unchanged.
func appendTokenBytes(dst []byte, tok string) []byte {
	start := len(dst)
	for _, r := range tok {
		b, ok := runeToByte[r]
		if !ok {
			return append(dst[:start], tok...)
		}
		dst = append(dst, b)
	}
	return dst
}

// lossyUTF8 converts b to a string replacing each maximal ill-formed subsequence with one
// U+FFFD, the rule Rust's String::from_utf8_lossy (and Python's "replace") follows. Go's
// strings.ToValidUTF8 collapses whole runs instead, which would make Decode differ from
// Hugging Face on byte tokens that split a character.
func lossyUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b) + 8)
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || n > 1 {
			sb.Write(b[i : i+n])
			i += n
			continue
		}
		sb.WriteRune(utf8.RuneError)
		i += maximalSubpart(b[i:])
	}
	return sb.String()
}

// maximalSubpart is the length (≥1) of the ill-formed prefix of b that counts as one
// replacement: a lead byte followed by as many continuation bytes as are valid for it
// (Unicode §3.9, table 3-7).
func maximalSubpart(b []byte) int {
	lead := b[0]
	var need int
	lo, hi := byte(0x80), byte(0xBF) // allowed range of the first continuation byte
	switch {
	case lead >= 0xC2 && lead <= 0xDF:
		need = 1
	case lead == 0xE0:
		need, lo = 2, 0xA0
	case lead >= 0xE1 && lead <= 0xEC, lead == 0xEE, lead == 0xEF:
		need = 2
	case lead == 0xED:
		need, hi = 2, 0x9F
	case lead == 0xF0:
		need, lo = 3, 0x90
	case lead >= 0xF1 && lead <= 0xF3:
		need = 3
	case lead == 0xF4:
		need, hi = 3, 0x8F
	default:
		return 1
	}
	n := 1
	for k := 0; k < need && n < len(b); k++ {
		c := b[n]
		if k == 0 && (c < lo || c > hi) || k > 0 && (c < 0x80 || c > 0xBF) {
			break
		}
		n++
	}
	return n
}
