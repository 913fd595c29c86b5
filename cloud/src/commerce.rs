//! Commerce domain types shared by the store and the `orders`, `payments`
//! and `market` modules: the order, payment and listing lifecycles.

use serde::{Deserialize, Serialize};
use std::str::FromStr;
use utoipa::ToSchema;

macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// The stored name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    other => Err(format!(concat!("unknown ", stringify!($name), " {:?}"), other)),
                }
            }
        }
    };
}

named_enum!(
    /// Order lifecycle: pending → paid → fulfilled, pending → expired or
    /// cancelled, paid → refunded. Nothing else.
    OrderStatus {
        /// Inventory held, waiting for payment until `expires_at`.
        Pending => "pending",
        /// Paid; its tickets are issued.
        Paid => "paid",
        /// Delivered (organizer's bookkeeping step after paid).
        Fulfilled => "fulfilled",
        /// The hold ran out before payment; inventory returned.
        Expired => "expired",
        /// Called off before payment; inventory returned.
        Cancelled => "cancelled",
        /// Money returned; its tickets are revoked.
        Refunded => "refunded",
    }
);

impl OrderStatus {
    /// Whether the lifecycle allows going from `self` to `next`.
    pub fn can_become(self, next: Self) -> bool {
        use OrderStatus::*;
        matches!(
            (self, next),
            (Pending, Paid | Expired | Cancelled) | (Paid, Fulfilled | Refunded)
        )
    }
}

named_enum!(
    /// What an order buys.
    OrderKind {
        /// New tickets from a tier's inventory.
        Primary => "primary",
        /// One ticket from a resale listing.
        Resale => "resale",
    }
);

named_enum!(
    /// How a payment is made.
    PaymentProvider {
        /// A Stripe PaymentIntent.
        Stripe => "stripe",
        /// Confirmed by the organizer (cash, bank transfer).
        Manual => "manual",
        /// Nothing to pay.
        Free => "free",
    }
);

named_enum!(
    /// Payment lifecycle. `refund_due`: money arrived for an order that could
    /// not take it (expired without stock, already paid); it is being returned.
    PaymentStatus {
        /// Waiting for the payer or the organizer.
        Pending => "pending",
        /// Money received.
        Succeeded => "succeeded",
        /// The last attempt failed (the payer may retry the same intent).
        Failed => "failed",
        /// Money received that must go back.
        RefundDue => "refund_due",
        /// Money returned.
        Refunded => "refunded",
        /// Abandoned (the order expired or was cancelled).
        Cancelled => "cancelled",
    }
);

named_enum!(
    /// Resale listing lifecycle: active → held (a buyer is paying) → sold,
    /// held → active (that order lapsed), active → cancelled.
    ListingStatus {
        /// For sale.
        Active => "active",
        /// Reserved by a buyer's pending order.
        Held => "held",
        /// Bought; the ticket moved to the buyer.
        Sold => "sold",
        /// Withdrawn by the seller (or the event was cancelled).
        Cancelled => "cancelled",
    }
);

named_enum!(
    /// Why a ticket changed hands.
    TransferKind {
        /// Given by its owner.
        Gift => "gift",
        /// Bought on the resale market.
        Resale => "resale",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_lifecycle_is_exactly_the_documented_one() {
        use OrderStatus::*;
        let all = [Pending, Paid, Fulfilled, Expired, Cancelled, Refunded];
        let allowed: Vec<(OrderStatus, OrderStatus)> = all
            .iter()
            .flat_map(|a| all.iter().map(move |b| (*a, *b)))
            .filter(|(a, b)| a.can_become(*b))
            .collect();
        assert_eq!(
            allowed,
            [
                (Pending, Paid),
                (Pending, Expired),
                (Pending, Cancelled),
                (Paid, Fulfilled),
                (Paid, Refunded)
            ]
        );
    }

    #[test]
    fn names_round_trip() {
        for s in [PaymentStatus::RefundDue, PaymentStatus::Succeeded] {
            assert_eq!(s.as_str().parse::<PaymentStatus>(), Ok(s));
        }
        assert!("paid ".parse::<OrderStatus>().is_err());
    }
}
