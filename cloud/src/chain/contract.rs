//! The ticket contract (`cloud/contracts/src/GatehouseTicket.sol`): its
//! checked-in ABI and bytecode, and how ticket ids become token ids.
//!
//! A token id is the ticket's UUID read as a 128-bit big-endian integer: one
//! ticket has exactly one possible token, so the contract itself refuses a
//! second mint, whatever the database believes.

use crate::model::TicketId;
use alloy::primitives::{Address, Bytes, U256, aliases::U96};
use alloy::sol_types::SolConstructor;

mod bindings {
    alloy::sol!(
        #[sol(rpc)]
        GatehouseTicket,
        "contracts/artifacts/GatehouseTicket.abi.json"
    );
}

pub(crate) use bindings::GatehouseTicket;

/// The deployable bytecode, hex (as solc wrote it).
pub const BYTECODE_HEX: &str = include_str!("../../contracts/artifacts/GatehouseTicket.bin");

/// The ABI, JSON (as solc wrote it).
pub const ABI_JSON: &str = include_str!("../../contracts/artifacts/GatehouseTicket.abi.json");

/// The token of a ticket.
pub fn token_id(ticket: TicketId) -> U256 {
    U256::from(ticket.0.as_u128())
}

/// The ticket of a token (any token of a Gatehouse contract is one).
pub fn ticket_of(token: U256) -> Option<TicketId> {
    let v: u128 = token.try_into().ok()?;
    Some(TicketId(uuid::Uuid::from_u128(v)))
}

/// What a new event contract is constructed with.
#[derive(Debug, Clone)]
pub struct ContractTerms {
    /// ERC-721 name (the event's).
    pub name: String,
    /// ERC-721 symbol.
    pub symbol: String,
    /// `tokenURI` prefix; the contract appends `<address>/<tokenId>`.
    pub metadata_base: String,
    /// Holds `DEFAULT_ADMIN_ROLE`.
    pub admin: Address,
    /// Holds `MINTER_ROLE`.
    pub minter: Address,
    /// EIP-2981 receiver.
    pub royalty_receiver: Address,
    /// EIP-2981 share, basis points.
    pub royalty_bps: u16,
    /// Tokens are locked until then (the event's end), unix seconds.
    pub locked_until: u64,
}

/// Creation code plus ABI-encoded constructor arguments.
pub fn deploy_code(terms: &ContractTerms) -> Result<Bytes, String> {
    let code = alloy::hex::decode(BYTECODE_HEX.trim())
        .map_err(|e| format!("contract bytecode is not hex: {e}"))?;
    let args = GatehouseTicket::constructorCall {
        name_: terms.name.clone(),
        symbol_: terms.symbol.clone(),
        metadataBase_: terms.metadata_base.clone(),
        admin: terms.admin,
        minter: terms.minter,
        royaltyReceiver: terms.royalty_receiver,
        royaltyBps: U96::from(terms.royalty_bps),
        lockedUntil_: terms.locked_until,
    }
    .abi_encode();
    let mut out = code;
    out.extend_from_slice(&args);
    Ok(out.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_ids_round_trip_and_differ_per_ticket() {
        let a = crate::model::new_ticket_id();
        let b = crate::model::new_ticket_id();
        assert_eq!(ticket_of(token_id(a)), Some(a));
        assert_ne!(token_id(a), token_id(b), "two tickets, two tokens");
        assert_eq!(ticket_of(U256::MAX), None, "not a ticket token");
    }

    #[test]
    fn deploy_code_is_bytecode_then_arguments() {
        let terms = ContractTerms {
            name: "Harbour Lights".into(),
            symbol: "GHT".into(),
            metadata_base: "https://cloud.example/nft/".into(),
            admin: Address::repeat_byte(1),
            minter: Address::repeat_byte(2),
            royalty_receiver: Address::repeat_byte(3),
            royalty_bps: 500,
            locked_until: 1_900_000_000,
        };
        let code = deploy_code(&terms).unwrap();
        let bytecode = alloy::hex::decode(BYTECODE_HEX.trim()).unwrap();
        assert!(code.starts_with(&bytecode));
        assert!(
            code.len() > bytecode.len() + 8 * 32,
            "eight arguments follow"
        );
    }
}
