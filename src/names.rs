//! Named choices: the words a setting takes on the command line and in config files.
//!
//! [`choices!`](crate::choices) writes `FromStr` for a field-less enum from one table of its
//! names, so every option (`--head`, `--keep`, `--scheme`, ...) parses the same way (ASCII case
//! and surrounding blanks ignored, aliases allowed) and refuses the same way (the error says what
//! was asked for and lists the canonical names). With `named`, it also writes `name()` (the
//! canonical name) and `Display`.

/// The error for a word that is none of `names`: `unknown head "x": expected softmax, ... or crf`.
pub fn unknown(what: &str, got: &str, names: &[&str]) -> String {
    let list = match names {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    };
    format!("unknown {what} {got:?}: expected {list}")
}

/// `FromStr` (and with `named`, `name()` and `Display`) for a field-less enum:
///
/// ```ignore
/// choices!(Keep, "keep": All = "all", Best = "best", Scores = "scores");
/// choices!(named Scheme, "scheme": Iob1 = "iob1" | "bio1", Iob2 = "iob2" | "bio" | "iob");
/// ```
///
/// The first name of a variant is its canonical name; the rest are aliases.
#[macro_export]
macro_rules! choices {
    ($ty:ident, $what:literal: $($variant:ident = $name:literal $(| $alias:literal)*),+ $(,)?) => {
        impl ::std::str::FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let word = s.trim().to_ascii_lowercase();
                $(
                    if word == $name $(|| word == $alias)* {
                        return Ok(Self::$variant);
                    }
                )+
                Err($crate::names::unknown($what, s, &[$($name),+]))
            }
        }
    };
    (named $ty:ident, $what:literal: $($variant:ident = $name:literal $(| $alias:literal)*),+ $(,)?) => {
        $crate::choices!($ty, $what: $($variant = $name $(| $alias)*),+);
        impl $ty {
            /// The canonical name (what config files and reports write).
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)+
                }
            }
        }
        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

#[cfg(test)]
mod tests {
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Fruit {
        Apple,
        Pear,
    }
    crate::choices!(named Fruit, "fruit": Apple = "apple" | "malus", Pear = "pear");

    #[test]
    fn names_aliases_case_and_the_error() {
        assert_eq!("apple".parse::<Fruit>(), Ok(Fruit::Apple));
        assert_eq!(" Malus ".parse::<Fruit>(), Ok(Fruit::Apple));
        assert_eq!("PEAR".parse::<Fruit>(), Ok(Fruit::Pear));
        assert_eq!(Fruit::Apple.to_string(), "apple");
        assert_eq!(
            "plum".parse::<Fruit>().unwrap_err(),
            r#"unknown fruit "plum": expected apple or pear"#
        );
        assert_eq!(
            super::unknown("x", "y", &["a", "b", "c"]),
            r#"unknown x "y": expected a, b or c"#
        );
    }
}
