//! Default prices in quota units (SPEC 2: 500 000 units = 1 USD). An admin's price rows
//! override them per action and per speed mode.

use super::{Mode, TaskAction};

/// What an action costs when no price row says otherwise.
pub fn default_price(action: TaskAction) -> i64 {
    match action {
        TaskAction::Upscale | TaskAction::Describe | TaskAction::SwapFace | TaskAction::Upload => {
            25_000
        }
        TaskAction::Imagine
        | TaskAction::Variation
        | TaskAction::Reroll
        | TaskAction::Blend
        | TaskAction::Zoom
        | TaskAction::Pan
        | TaskAction::Shorten => 50_000,
    }
}

/// A configured price: for one action, in one mode or (`mode: None`) in every mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceRule {
    pub action: TaskAction,
    pub mode: Option<Mode>,
    pub price: i64,
}

/// The price of `action` in `mode`: the mode's own rule, else the action's rule, else the
/// default.
pub fn price_of(rules: &[PriceRule], action: TaskAction, mode: Option<Mode>) -> i64 {
    let rule = |m: Option<Mode>| rules.iter().find(|r| r.action == action && r.mode == m);
    mode.and_then(|m| rule(Some(m)))
        .or_else(|| rule(None))
        .map(|r| r.price)
        .unwrap_or_else(|| default_price(action))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_specific_rule_wins() {
        let rules = vec![
            PriceRule {
                action: TaskAction::Imagine,
                mode: None,
                price: 40_000,
            },
            PriceRule {
                action: TaskAction::Imagine,
                mode: Some(Mode::Turbo),
                price: 80_000,
            },
        ];
        assert_eq!(
            price_of(&rules, TaskAction::Imagine, Some(Mode::Turbo)),
            80_000
        );
        assert_eq!(
            price_of(&rules, TaskAction::Imagine, Some(Mode::Relax)),
            40_000
        );
        assert_eq!(price_of(&rules, TaskAction::Imagine, None), 40_000);
        assert_eq!(price_of(&rules, TaskAction::Upscale, None), 25_000);
        assert_eq!(price_of(&[], TaskAction::Zoom, Some(Mode::Fast)), 50_000);
    }
}
