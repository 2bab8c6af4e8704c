// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Quanchenglian audit anchor
/// @notice Commitments of vault documents (salted hashes, never content) and checkpoints of the
/// vault's release log (RFC 9162 Merkle tree size and root). Written by the platform operator
/// (an active ADMIN of the ledger); read by auditors.
interface IAuditAnchor {
    struct Document {
        bytes32 commitment;
        address subject;
        address issuer;
        uint64 anchoredAt;
        bool shredded;
    }

    struct Checkpoint {
        uint64 treeSize;
        uint64 anchoredAt;
        bytes32 rootHash;
    }

    /// @notice The caller is not an active ADMIN of the ledger.
    error AuditAnchorUnauthorized(address caller);
    /// @notice A document with this id is already anchored.
    error AuditAnchorDocumentExists(bytes32 documentId);
    /// @notice No document with this id is anchored.
    error AuditAnchorUnknownDocument(bytes32 documentId);
    /// @notice The document was already shredded.
    error AuditAnchorDocumentShredded(bytes32 documentId);
    /// @notice The issuer may not issue this resource to this subject (it must be the subject
    /// itself, or the resource's active PROVIDER), or the subject is not an active SUBJECT.
    error AuditAnchorInvalidIssuer(address issuer, bytes32 resource);
    /// @notice The resource is not in the catalog.
    error AuditAnchorUnknownResource(bytes32 resource);
    /// @notice A document commitment must not be zero.
    error AuditAnchorInvalidCommitment(bytes32 documentId);
    /// @notice A checkpoint must grow the tree (and a commitment or root must not be zero).
    error AuditAnchorInvalidCheckpoint(uint64 treeSize);

    event DocumentAnchored(
        bytes32 indexed documentId, address indexed subject, bytes32 indexed resource, bytes32 commitment, address issuer
    );
    event DocumentShredded(bytes32 indexed documentId, address indexed subject);
    event CheckpointAnchored(uint256 indexed index, uint64 treeSize, bytes32 rootHash);

    function anchorDocument(bytes32 documentId, address subject, bytes32 resource, bytes32 commitment, address issuer)
        external;

    function shredDocument(bytes32 documentId) external;

    function anchorCheckpoint(uint64 treeSize, bytes32 rootHash) external returns (uint256 index);

    function document(bytes32 documentId) external view returns (Document memory);

    function checkpointCount() external view returns (uint256);

    function checkpoint(uint256 index) external view returns (Checkpoint memory);
}
