// Decimal text of f64 values as Rust prints them, so that the port writes
// the same bytes as the Rust processor.

/** Shortest round-trip digits of a finite non-zero |x|: [digits, point],
 * the value being 0.digits × 10^point. */
function shortest(x) {
  const [mantissa, exp] = Math.abs(x).toExponential().split('e');
  const digits = mantissa.replace('.', '');
  return [digits, Number(exp) + 1];
}

/** `x` as Rust's `Display` for f64 prints it: shortest round-trip digits,
 * never an exponent (`1e21` prints as `1000000000000000000000`). */
export function rustDisplay(x) {
  if (Number.isNaN(x)) return 'NaN';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  const sign = x < 0 || Object.is(x, -0) ? '-' : '';
  if (x === 0) return `${sign}0`;
  const [digits, point] = shortest(x);
  if (point <= 0) return `${sign}0.${'0'.repeat(-point)}${digits}`;
  if (point >= digits.length) return sign + digits + '0'.repeat(point - digits.length);
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
}

/** `x` as the `zmij` crate (serde_json's float writer) formats it:
 * shortest digits, plain notation for decimal exponents -5 to 15
 * (`100.0`, `0.0001`), otherwise `1.5e+300`, `1e-7`. */
export function zmijFormat(x) {
  const sign = x < 0 || Object.is(x, -0) ? '-' : '';
  if (x === 0) return `${sign}0.0`;
  const [digits, point] = shortest(x);
  const exp = point - 1;
  const n = digits.length;
  if (exp >= -5 && exp <= 15) {
    if (n - 1 <= exp) return `${sign}${digits}${'0'.repeat(exp + 1 - n)}.0`;
    if (exp >= 0) return `${sign}${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`;
    return `${sign}0.${'0'.repeat(-exp - 1)}${digits}`;
  }
  const mantissa = n === 1 ? digits : `${digits[0]}.${digits.slice(1)}`;
  return `${sign}${mantissa}e${exp >= 0 ? '+' : '-'}${Math.abs(exp)}`;
}
