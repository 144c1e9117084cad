//! The two sides of a comparison and the classes every record ends in.

/// Which topic a record comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    /// `--left`: the legacy output.
    Left,
    /// `--right`: the new output.
    Right,
}

impl Side {
    /// `L` or `R`, in stored keys.
    pub fn byte(self) -> u8 {
        match self {
            Side::Left => b'L',
            Side::Right => b'R',
        }
    }

    /// 0 for left, 1 for right.
    pub fn index(self) -> usize {
        usize::from(self == Side::Right)
    }

    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::Left => Side::Right,
            Side::Right => Side::Left,
        }
    }

    /// `left` or `right`.
    pub fn name(self) -> &'static str {
        match self {
            Side::Left => "left",
            Side::Right => "right",
        }
    }
}

/// Where every record ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// Paired, equal values.
    Match,
    /// Paired, values differ.
    Mismatch,
    /// Only on the left within the window.
    OnlyLeft,
    /// Only on the right within the window.
    OnlyRight,
    /// More records for its key within a window on its side than on the
    /// other.
    Duplicate,
    /// Arrived after its window closed, beyond the grace period.
    Late,
}

impl Class {
    /// Every class, in report order.
    pub const ALL: [Class; 6] = [
        Class::Match,
        Class::Mismatch,
        Class::OnlyLeft,
        Class::OnlyRight,
        Class::Duplicate,
        Class::Late,
    ];

    /// The class's name in reports and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Class::Match => "match",
            Class::Mismatch => "mismatch",
            Class::OnlyLeft => "only_left",
            Class::OnlyRight => "only_right",
            Class::Duplicate => "duplicate",
            Class::Late => "late",
        }
    }

    /// `OnlyLeft` or `OnlyRight`.
    pub fn only(side: Side) -> Class {
        match side {
            Side::Left => Class::OnlyLeft,
            Side::Right => Class::OnlyRight,
        }
    }
}
