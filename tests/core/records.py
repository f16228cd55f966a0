"""Valid canonical-looking records for tests, built field by field so each test can break one thing."""

import datetime as dt


def birth(n: int = 1, **over) -> dict:
    born = dt.datetime(2025, 11, 9, 8, 30)
    rec = {
        "MA_GCS": f"{n:05d}.GCS.01020.25",
        "MA_CSKCB": "01020",
        "SO": str(n),
        "QUYEN_SO": "01/2025",
        "NGAY_CT": "20251110",
        "HOTEN_NND": "Nguyễn Thị Lan",
        "NGAYSINH_NND": "19950304",
        "MA_DANTOC_NND": "01",
        "MA_QUOCTICH_NND": "704",
        "LOAI_GIAYTO_NND": "1",
        "SO_CCCD_NND": "001195012345",
        "NGAYCAP_CCCD_NND": "20210405",
        "NOICAP_CCCD_NND": "Cục Cảnh sát QLHC về TTXH",
        "NOI_CU_TRU_NND": "Phường Ba Đình, Thành phố Hà Nội",
        "MATINH_CU_TRU": "01",
        "MAXA_CU_TRU": "00004",
        "HO_TEN_CHA": "Trần Văn Nam",
        "TEN_CON": "Trần Minh An",
        "GIOI_TINH_CON": 1,
        "SO_CON": 1,
        "LAN_SINH": 1,
        "SO_CON_SONG": 1,
        "CAN_NANG_CON": 3200,
        "NGAY_SINH_CON": born.strftime("%Y%m%d%H%M"),
        "NOI_SINH_CON": "Bệnh viện Phụ sản Hà Nội",
        "TINH_TRANG_CON": "Khỏe mạnh",
        "SINHCON_PHAUTHUAT": 0,
        "SINHCON_DUOI32TUAN": 0,
        "NGUOI_DO_DE": "Lê Thị Hoa",
        "NGUOI_GHI_PHIEU": "Phạm Thu Hà",
    }
    rec.update(over)
    return rec


def death(n: int = 1, **over) -> dict:
    rec = {
        "MA_GBT": f"{n:05d}.GBT.96025.25",
        "MA_BN": f"BN{n:06d}",
        "HO_TEN": "LÊ VĂN HÙNG",
        "NGAY_SINH": "19480215",
        "GIOI_TINH": 1,
        "MA_DANTOC": "01",
        "MA_QUOCTICH": "704",
        "DCHI_THUONGTRU": "Phường An Xuyên, Cà Mau",
        "MATINH_THUONGTRU": "96",
        "MAXA_THUONGTRU": "32014",
        "LOAI_GIAYTO": "1",
        "SO_GIAYTO": "096048001234",
        "NGAY_CAP": "20210610",
        "NOI_CAP": "Cục Cảnh sát QLHC về TTXH",
        "NGAYGIO_VV": "202511011000",
        "NGAY_TV": "202511030615",
        "TINH_TRANG_TV": 0,
        "NGUYENNHAN_TV": "Nhồi máu cơ tim cấp",
        "BENH_ICD10_ID": "I21.9",
        "NGUOI_GHIGIAY": "Võ Thị Mai",
        "NGUOI_THANTHICH": "Lê Văn Tâm",
        "TTRUONG_DVI": "Nguyễn Văn Bình",
        "SO_BAOTU": str(n),
        "QUYEN_SO": "01",
        "NGAY_CAPGIAYBT": "20251103",
        "MACSKCB": "96025",
        "DIACHI_CSKCB": "Cà Mau",
    }
    rec.update(over)
    return rec
