//! Sample legacy data: orders as CSV lines `id,customer,amount,country`,
//! keyed by customer, as a legacy order system would export them.
//!
//! The data is deterministic for a given seed, so a test can recompute what
//! it produced. On request every n-th line is malformed the way legacy
//! exports break (`;` instead of `,`), for dead-letter tests; the id still
//! leads the line so that a rejected record can be traced back.

use crate::kafka::Record;

/// Country codes the generator picks from.
pub const COUNTRIES: [&str; 8] = ["FR", "DE", "NL", "BE", "ES", "IT", "GB", "US"];

/// The CSV column names, in order, for `csv-to-json`'s configuration.
pub const COLUMNS: &str = "id,customer,amount,country";

/// One generated order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// Sequence number, from 1.
    pub id: u64,
    /// Customer id, `c0001` and up; the record key.
    pub customer: String,
    /// Amount in cents.
    pub amount_cents: u64,
    /// Country code.
    pub country: &'static str,
    /// True when the line is written with `;` separators, which a CSV parser
    /// expecting `,` rejects.
    pub malformed: bool,
}

impl Order {
    /// The amount as text with two decimals, such as `12.05`.
    pub fn amount(&self) -> String {
        format!("{}.{:02}", self.amount_cents / 100, self.amount_cents % 100)
    }

    /// The CSV line, without a line break.
    pub fn line(&self) -> String {
        let sep = if self.malformed { ';' } else { ',' };
        format!(
            "{}{sep}{}{sep}{}{sep}{}",
            self.id,
            self.customer,
            self.amount(),
            self.country
        )
    }

    /// A Kafka record: key = customer, value = the CSV line.
    pub fn record(&self) -> Record {
        Record::new(&self.customer, &self.line())
    }
}

/// Settings of the order generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Orders {
    /// Seed of the pseudo-random sequence.
    pub seed: u64,
    /// Number of distinct customers.
    pub customers: u64,
    /// When set, every n-th order (by id) is malformed.
    pub malformed_every: Option<u64>,
}

impl Default for Orders {
    fn default() -> Orders {
        Orders {
            seed: 42,
            customers: 100,
            malformed_every: None,
        }
    }
}

impl Orders {
    /// Orders 1 to `count`.
    pub fn generate(&self, count: u64) -> impl Iterator<Item = Order> + use<> {
        let settings = *self;
        let mut rng = SplitMix64(settings.seed);
        (1..=count).map(move |id| {
            let customer = rng.next() % settings.customers.max(1) + 1;
            let amount_cents = 100 + rng.next() % 99_900;
            let country = COUNTRIES[(rng.next() % COUNTRIES.len() as u64) as usize];
            Order {
                id,
                customer: format!("c{customer:04}"),
                amount_cents,
                country,
                malformed: settings
                    .malformed_every
                    .is_some_and(|n| n > 0 && id % n == 0),
            }
        })
    }
}

/// The order id that leads a CSV line (well-formed or not), if any.
pub fn id_of_line(line: &str) -> Option<u64> {
    let digits: &str = &line[..line
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(line.len())];
    digits.parse().ok()
}

/// SplitMix64: small, fast and good enough for sample data.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_four_columns_and_ids_in_sequence() {
        let orders: Vec<Order> = Orders::default().generate(1000).collect();
        assert_eq!(orders.len(), 1000);
        for (i, o) in orders.iter().enumerate() {
            assert_eq!(o.id, i as u64 + 1);
            let line = o.line();
            let cols: Vec<&str> = line.split(',').collect();
            assert_eq!(cols.len(), 4, "{line}");
            assert_eq!(cols[0], o.id.to_string());
            assert_eq!(cols[1], o.customer);
            assert!(COUNTRIES.contains(&cols[3]), "{line}");
            let amount: f64 = cols[2].parse().unwrap();
            assert!((1.0..1000.0).contains(&amount), "{line}");
        }
    }

    #[test]
    fn same_seed_same_data_other_seed_other_data() {
        let a: Vec<String> = Orders::default().generate(50).map(|o| o.line()).collect();
        let b: Vec<String> = Orders::default().generate(50).map(|o| o.line()).collect();
        let c: Vec<String> = Orders {
            seed: 7,
            ..Orders::default()
        }
        .generate(50)
        .map(|o| o.line())
        .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn customers_stay_in_range_and_all_appear() {
        let settings = Orders {
            customers: 5,
            ..Orders::default()
        };
        let mut seen: Vec<String> = settings.generate(500).map(|o| o.customer).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen, ["c0001", "c0002", "c0003", "c0004", "c0005"]);
    }

    #[test]
    fn every_nth_line_is_malformed_and_keeps_its_id() {
        let settings = Orders {
            malformed_every: Some(10),
            ..Orders::default()
        };
        let orders: Vec<Order> = settings.generate(100).collect();
        let bad: Vec<u64> = orders
            .iter()
            .filter(|o| o.malformed)
            .map(|o| o.id)
            .collect();
        assert_eq!(bad, (1..=10).map(|i| i * 10).collect::<Vec<_>>());
        let line = orders[9].line();
        assert_eq!(line.split(',').count(), 1, "{line}");
        assert_eq!(line.split(';').count(), 4, "{line}");
        assert_eq!(id_of_line(&line), Some(10));
    }

    #[test]
    fn record_is_keyed_by_customer() {
        let o = Orders::default().generate(1).next().unwrap();
        let r = o.record();
        assert_eq!(r.key.as_deref(), Some(o.customer.as_bytes()));
        assert_eq!(r.value.as_deref(), Some(o.line().as_bytes()));
        assert!(r.headers.is_empty());
    }

    #[test]
    fn id_of_line_needs_leading_digits() {
        assert_eq!(id_of_line("123,c0001,1.00,FR"), Some(123));
        assert_eq!(id_of_line("7"), Some(7));
        assert_eq!(id_of_line("x1,c"), None);
        assert_eq!(id_of_line(""), None);
    }

    #[test]
    fn amounts_print_two_decimals() {
        let o = Order {
            id: 1,
            customer: "c0001".into(),
            amount_cents: 1205,
            country: "FR",
            malformed: false,
        };
        assert_eq!(o.amount(), "12.05");
        assert_eq!(o.line(), "1,c0001,12.05,FR");
    }
}
